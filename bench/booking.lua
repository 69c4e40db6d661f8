-- wrk script for the booking benchmark (bench/run.py, section `bookings`).
--
--   wrk -t2 -cN -dSs --latency -s bench/booking.lua URL -- REQUESTS OUT_PREFIX THREADS
--
-- REQUESTS: one line per person, precomputed by bench/run.py:
--   <bearer token> TAB <idempotency key> TAB <JSON body>
-- Thread i (0-based) of THREADS takes the lines i, i + THREADS, ...; each request books the
-- next person of its thread. When a thread has no one left it stops (a last GET /healthz is
-- sent, answered 200, so that the run's figures show it).
-- Every 201 has its appointment ids written, one a line, to OUT_PREFIX.<thread id>, for the
-- integrity check (every acknowledged booking present in the database).
-- done() prints one line, "BOOKING_JSON {...}": duration, status counts, latency percentiles
-- (over all responses, as wrk measures them).

local counter = 0
local threads = {}

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local requests = {}
local nextone = 1
local out = nil
codes = {}

function init(args)
   local path, prefix, nthreads = args[1], args[2], tonumber(args[3])
   local i = 0
   for line in io.lines(path) do
      if i % nthreads == tid then
         local token, key, body = line:match("^([^\t]+)\t([^\t]+)\t(.+)$")
         requests[#requests + 1] = wrk.format("POST", "/api/v1/appointments", {
            ["Authorization"] = "Bearer " .. token,
            ["Idempotency-Key"] = key,
            ["Content-Type"] = "application/json",
         }, body)
      end
      i = i + 1
   end
   out = io.open(prefix .. "." .. tid, "w")
   out:setvbuf("line")
end

function request()
   local r = requests[nextone]
   if r == nil then
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
   end
   nextone = nextone + 1
   return r
end

function response(status, headers, body)
   codes[status] = (codes[status] or 0) + 1
   if status == 201 then
      local ids = body:match('"appointment_ids"%s*:%s*%[(.-)%]')
      if ids then
         for id in ids:gmatch('"([^"]+)"') do
            out:write(id, "\n")
         end
      end
   end
end

function done(summary, latency, requests)
   local parts = {}
   for _, thread in ipairs(threads) do
      local c = thread:get("codes") or {}
      for status, n in pairs(c) do
         local k = tostring(status)
         parts[k] = (parts[k] or 0) + n
      end
   end
   local codes_json = {}
   for k, n in pairs(parts) do
      codes_json[#codes_json + 1] = string.format('"%s": %d', k, n)
   end
   local e = summary.errors
   io.write(string.format(
      'BOOKING_JSON {"duration_us": %d, "requests": %d, "codes": {%s}, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
      '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.duration, summary.requests, table.concat(codes_json, ", "),
      e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
