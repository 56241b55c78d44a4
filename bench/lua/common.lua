-- Shared by the wrk scripts: one wrk thread per connection, per-thread status counts, and a JSON
-- summary line (WRKJSON {...}) printed by done() for bench/_common.py to read.
local threads = {}
local next_id = 1

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

statuses = {}

function count(status)
   local k = tostring(status)
   statuses[k] = (statuses[k] or 0) + 1
end

function json_summary(summary, latency, extra_keys)
   local merged = {}
   local extra = {}
   for _, t in ipairs(threads) do
      local s = t:get("statuses")
      for k, v in pairs(s or {}) do merged[k] = (merged[k] or 0) + v end
      for _, key in ipairs(extra_keys or {}) do extra[key] = (extra[key] or 0) + (t:get(key) or 0) end
   end
   local parts = {}
   for k, v in pairs(merged) do table.insert(parts, string.format('"%s": %d', k, v)) end
   local xparts = {}
   for k, v in pairs(extra) do table.insert(xparts, string.format('"%s": %d', k, v)) end
   local secs = summary.duration / 1e6
   io.write(string.format(
      'WRKJSON {"requests": %d, "seconds": %.3f, "rps": %.2f, "p50": %.3f, "p90": %.3f, "p99": %.3f, ' ..
      '"max": %.3f, "errors": %d, "statuses": {%s}, "extra": {%s}}\n',
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
      table.concat(parts, ", "), table.concat(xparts, ", ")))
end
