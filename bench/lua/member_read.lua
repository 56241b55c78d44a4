-- GET /api/v1/members/{member}/ on random members. args: api key, number of members.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

local key, members

function init(args)
   key, members = args[1], tonumber(args[2])
   math.randomseed(os.time() * 100 + tid)
end

function request()
   local member = string.format("b%07d", math.random(1, members))
   return wrk.format("GET", "/api/v1/members/" .. member .. "/", {["Authorization"] = "Bearer " .. key})
end

function response(status, headers, body)
   count(status)
end

function done(summary, latency, requests)
   json_summary(summary, latency)
end
