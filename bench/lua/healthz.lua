-- GET /healthz: Django, one database and one broker round trip; the floor of any request here.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

function response(status, headers, body)
   count(status)
end

function done(summary, latency, requests)
   json_summary(summary, latency)
end
