-- wrk script shared by every case.
--
-- BENCH_REQUESTS names a file written by bench/bench.py, one request per line:
--   METHOD <TAB> PATH <TAB> TOKEN [<TAB> JSON BODY [<TAB> keyed]]
-- A line marked "keyed" is sent with a fresh Idempotency-Key every time (built per request: that case
-- costs wrk some Lua time per request, and the case's own numbers say so).
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
local keyed = {}
local n = 0
local i = 0
local sent = 0
local prefix = ""

function init(args)
   local file = os.getenv("BENCH_REQUESTS")
   for line in io.lines(file) do
      local method, path, token, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t?(.*)$")
      if method then
         local headers = { ["Authorization"] = "Bearer " .. token }
         local key = false
         if body ~= nil and body:sub(-6) == "\tkeyed" then
            body = body:sub(1, -7)
            key = true
         end
         if body == nil or body == "" then
            body = nil
         else
            headers["Content-Type"] = "application/json"
         end
         n = n + 1
         if key then
            keyed[n] = { method, path, headers, body }
         end
         reqs[n] = wrk.format(method, path, headers, body)
      end
   end
   if n == 0 then
      error("no requests in " .. tostring(file))
   end
   -- tid is set by setup(); spread the threads over the list.
   i = ((tid or 0) * 7919) % n
   math.randomseed(os.time() + (tid or 0))
   prefix = string.format("%d-%d-%d-", os.time(), tid or 0, math.random(1, 1000000000))
end

function request()
   i = i + 1
   if i > n then
      i = 1
   end
   local k = keyed[i]
   if k then
      sent = sent + 1
      k[3]["Idempotency-Key"] = prefix .. sent
      return wrk.format(k[1], k[2], k[3], k[4])
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
