-- wrk script: POST /v1/score for random cards, latency recorded per answer class (200, 503, other).
-- Run with as many threads as connections (-t C -c C): each thread then has one connection, so its
-- request() and response() calls alternate and time exactly one request each.
-- Environment: WRK_KEY (API key), WRK_CARDS (number of cards, default 100000), WRK_RATE (requests per
-- second each connection offers, like callers whose requests arrive on their own schedule: a request
-- waits for its turn, and goes at once when the answers fell behind; unset: the next request goes as
-- soon as the previous answer is in, whatever it was), WRK_DEADLINE_MS (sent as X-Request-Timeout-Ms).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } timespec;
int clock_gettime(int clk_id, timespec *tp);
]]
local ts = ffi.new("timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

local key = os.getenv("WRK_KEY") or ""
local cards = tonumber(os.getenv("WRK_CARDS") or "100000")
local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key }
local deadline = os.getenv("WRK_DEADLINE_MS")
if deadline then headers["X-Request-Timeout-Ms"] = deadline end

-- latency histograms in 10 us buckets, per class
h200, h503, hother = {}, {}, {}
n200, n503, nother = 0, 0, 0
local t0 = 0
local rate = tonumber(os.getenv("WRK_RATE") or "0")
local interval_us = rate > 0 and 1000000 / rate or 0
local next_at = nil

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function delay()
  if interval_us == 0 then return 0 end
  local now = now_us()
  if next_at == nil then next_at = now + math.random() * interval_us end -- spread the connections' phases
  local wait = next_at - now
  next_at = math.max(next_at, now) + interval_us
  return wait > 0 and wait / 1000 or 0
end

function request()
  local body = string.format('{"model":"fraud","entity":"card-%06d","request":{"amount":42.5,"country":"FR"}}',
                             math.random(1, cards))
  t0 = now_us()
  return wrk.format("POST", "/v1/score", headers, body)
end

local function add(h, us)
  local b = math.floor(us / 10)
  h[b] = (h[b] or 0) + 1
end

function response(status, hdrs, body)
  local us = now_us() - t0
  if status == 200 then add(h200, us); n200 = n200 + 1
  elseif status == 503 then add(h503, us); n503 = n503 + 1
  else add(hother, us); nother = nother + 1 end
end

local function quantile(h, n, q)
  if n == 0 then return 0 end
  local keys = {}
  for k in pairs(h) do table.insert(keys, k) end
  table.sort(keys)
  local want, seen = q * n, 0
  for _, k in ipairs(keys) do
    seen = seen + h[k]
    if seen >= want then return (k + 1) * 10 / 1000 end
  end
  return (keys[#keys] + 1) * 10 / 1000
end

function done(summary, latency, requests)
  local all = { ["200"] = { {}, 0 }, ["503"] = { {}, 0 }, other = { {}, 0 } }
  for _, t in ipairs(threads) do
    for name, pair in pairs({ ["200"] = { "h200", "n200" }, ["503"] = { "h503", "n503" }, other = { "hother", "nother" } }) do
      local h, n = t:get(pair[1]), t:get(pair[2])
      for k, v in pairs(h) do all[name][1][k] = (all[name][1][k] or 0) + v end
      all[name][2] = all[name][2] + n
    end
  end
  local secs = summary.duration / 1e6
  for _, name in ipairs({ "200", "503", "other" }) do
    local h, n = all[name][1], all[name][2]
    io.write(string.format("CLASS %s count=%d rate=%.1f p50=%.3f p99=%.3f max=%.3f\n", name, n, n / secs,
      quantile(h, n, 0.5), quantile(h, n, 0.99), quantile(h, n, 1.0)))
  end
  io.write(string.format("ERRORS connect=%d read=%d write=%d timeout=%d status=%d\n", summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout, summary.errors.status))
end
