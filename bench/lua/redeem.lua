-- Points as payment: POST /api/v1/redemptions/ (hold 500 points) then POST .../{id}/capture/,
-- each with its own Idempotency-Key; one connection per thread, so the hold's id is this thread's.
-- args: api key, run prefix, first member number, last member number (one member: the hot member).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

local key, prefix, first, last
local n = 0
local pending_id = nil
captured = 0
refused = 0

function init(args)
   key, prefix, first, last = args[1], args[2], tonumber(args[3]), tonumber(args[4])
   math.randomseed(os.time() * 100 + tid)
end

function request()
   n = n + 1
   local idem = string.format("%s-%d-%d", prefix, tid, n)
   local headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. key,
      ["Idempotency-Key"] = idem,
   }
   if pending_id then
      return wrk.format("POST", "/api/v1/redemptions/" .. pending_id .. "/capture/", headers, "")
   end
   local member = string.format("b%07d", math.random(first, last))
   return wrk.format("POST", "/api/v1/redemptions/", headers,
      '{"member": "' .. member .. '", "points": 500, "order_external_id": "' .. idem .. '"}')
end

function response(status, headers, body)
   count(status)
   if pending_id then
      if status == 200 then captured = captured + 1 end
      pending_id = nil
   elseif status == 201 then
      pending_id = body:match('"id":%s*(%d+)')
   else
      refused = refused + 1
      if not printed then
         printed = true
         io.stderr:write("unexpected " .. status .. ": " .. body:sub(1, 300) .. "\n")
      end
   end
end

function done(summary, latency, requests)
   json_summary(summary, latency, {"captured", "refused"})
end
