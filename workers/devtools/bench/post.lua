local ffi = require("ffi")
ffi.cdef[[ int getpid(void); int kill(int pid, int sig); ]]
local run, limit, body = "", 0, ""
local counter, answered = 0, 0
not2xx = 0  -- global: done() reads it from each thread (wrk counts only >= 400 itself)
local headers = { ["Content-Type"] = "application/json" }
threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  run, limit = args[1], tonumber(args[2])
  local f = assert(io.open(args[3], "rb")); body = f:read("*a"); f:close()
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/v1/order/" .. run .. "-" .. counter .. "/events", headers, body)
end
function response(status, h, b)
  answered = answered + 1
  if status < 200 or status > 299 then not2xx = not2xx + 1 end
  if answered == limit then ffi.C.kill(ffi.C.getpid(), 2) end
end
function done(summary, latency, requests)
  local e, refused = summary.errors, 0
  for _, t in ipairs(threads) do refused = refused + t:get("not2xx") end
  io.write(string.format(
    '{"count":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"status":%d,"socket":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    refused, e.connect + e.read + e.write + e.timeout))
end
