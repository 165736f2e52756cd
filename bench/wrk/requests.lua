-- wrk script shared by every case.
--
-- BENCH_REQUESTS names a file written by bench/bench.py, one request per line:
--   METHOD <TAB> PATH <TAB> TOKEN [<TAB> JSON BODY]
-- Every line is turned into a ready-made HTTP request once, in init(); request() then just rotates
-- through them, so many users (and their pre-minted HS256 tokens) are exercised and wrk spends no
-- Lua time per request. Each thread starts at a different point of the list.
-- BENCH_OUT names the JSON file done() writes the summary to (latencies in microseconds).

local thread_count = 0

function setup(thread)
   thread:set("tid", thread_count)
   thread_count = thread_count + 1
end

local reqs = {}
local n = 0
local i = 0

function init(args)
   local file = os.getenv("BENCH_REQUESTS")
   for line in io.lines(file) do
      local method, path, token, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t?(.*)$")
      if method then
         local headers = { ["Authorization"] = "Bearer " .. token }
         if body == nil or body == "" then
            body = nil
         else
            headers["Content-Type"] = "application/json"
         end
         n = n + 1
         reqs[n] = wrk.format(method, path, headers, body)
      end
   end
   if n == 0 then
      error("no requests in " .. tostring(file))
   end
   -- tid is set by setup(); spread the threads over the list.
   i = ((tid or 0) * 7919) % n
end

function request()
   i = i + 1
   if i > n then
      i = 1
   end
   return reqs[i]
end

function done(summary, latency, requests)
   local e = summary.errors
   local out = io.open(os.getenv("BENCH_OUT"), "w")
   out:write(string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, '
         .. '"status": %d, "timeout": %d, "p50": %d, "p95": %d, "p99": %d, "max": %d, "mean": %.1f}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean
   ))
   out:close()
end
