local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } eventfleet_timespec;
  int clock_gettime(int clock, eventfleet_timespec *ts);
  int getpid(void); int kill(int pid, int sig);
]]
local ts = ffi.new("eventfleet_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end
local run, limit, body, interval_us, measure = "", 0, "", 0, false
local headers = { ["Content-Type"] = "application/json" }
local counter, answered, sent_at, next_at = 0, 0, 0, 0
ok, refused, other, other_status = 0, 0, 0, 0  -- globals: done() reads them from each thread
lat = {}
threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  run, limit = args[1], tonumber(args[2])
  local f = assert(io.open(args[3], "rb")); body = f:read("*a"); f:close()
  headers["Authorization"] = "Bearer " .. args[4]
  local rate = tonumber(args[5])
  if rate > 0 then interval_us = 1000000 / rate end
  measure = args[6] == "1"
end
function delay()
  if interval_us == 0 then return 0 end
  local now = now_us()
  if next_at < now then next_at = now end
  local wait = next_at - now
  next_at = next_at + interval_us
  return math.floor(wait / 1000)
end
function request()
  counter = counter + 1
  sent_at = now_us()
  return wrk.format("POST", "/v1/order/" .. run .. "-" .. id .. "-" .. counter .. "/events",
                    headers, body)
end
function response(status, h, b)
  answered = answered + 1
  if status >= 200 and status < 300 then
    ok = ok + 1
    if measure then lat[#lat + 1] = now_us() - sent_at end
  elseif status == 429 then
    refused = refused + 1
  else
    other = other + 1
    other_status = status
  end
  if limit > 0 and answered == limit then ffi.C.kill(ffi.C.getpid(), 2) end
end
function done(summary, latency, requests)
  local all, o, r, x, xs = {}, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    o, r, x = o + t:get("ok"), r + t:get("refused"), x + t:get("other")
    if t:get("other_status") ~= 0 then xs = t:get("other_status") end
    for _, v in ipairs(t:get("lat")) do all[#all + 1] = v end
  end
  table.sort(all)
  local function pct(p)
    if #all == 0 then return -1 end
    return all[math.max(1, math.ceil(#all * p / 100))]
  end
  local e = summary.errors
  io.write(string.format(
    '{"duration_us":%d,"ok":%d,"refused":%d,"other":%d,"other_status":%d,' ..
    '"p50_us":%.0f,"p99_us":%.0f,"socket":%d}\n',
    summary.duration, o, r, x, xs, pct(50), pct(99), e.connect + e.read + e.write + e.timeout))
end
