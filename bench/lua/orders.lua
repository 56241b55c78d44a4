-- POST /api/v1/orders/ with a unique external id and Idempotency-Key per request, on random members.
-- args: api key, run prefix, number of members (external ids b0000001..)
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

local key, prefix, members
local n = 0

function init(args)
   key, prefix, members = args[1], args[2], tonumber(args[3])
   math.randomseed(os.time() * 100 + tid)
end

function request()
   n = n + 1
   local id = string.format("%s-%d-%d", prefix, tid, n)
   local member = string.format("b%07d", math.random(1, members))
   local body = '{"external_id": "' .. id .. '", "member": "' .. member .. '", "currency": "USD", ' ..
      '"lines": [{"sku": "SERUM-1", "category": "skincare", "quantity": 1, "unit_price": "42.00", "discount": "2.00"}, ' ..
      '{"sku": "LIP-7", "category": "makeup", "quantity": 2, "unit_price": "18.50"}], ' ..
      '"tax": "6.20", "shipping": "4.99"}'
   return wrk.format("POST", "/api/v1/orders/", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. key,
      ["Idempotency-Key"] = id,
   }, body)
end

function response(status, headers, body)
   count(status)
   if status ~= 201 and not printed then
      printed = true
      io.stderr:write("unexpected " .. status .. ": " .. body:sub(1, 300) .. "\n")
   end
end

function done(summary, latency, requests)
   json_summary(summary, latency)
end
