-- wrk script for the Coinpurse benchmark: one file, four workloads.
--
--   wrk -t2 -c64 -d20s -s bench/wrk/coinpurse.lua http://127.0.0.1:PORT -- \
--       SCENARIO API_KEY USERS NONCE [TOKENS_FILE] [BATCH_SIZE] [RATE_PER_THREAD]
--
-- RATE_PER_THREAD (requests/s, 0 = as fast as possible): a fixed-rate run. Debian has no
-- wrk2, so delay() paces each thread's requests on a schedule (one every 1/RATE s, shared by
-- the thread's connections). Latency is wrk's, from sending a request to its answer: the
-- time a request waited for its slot when the server fell behind is not added (no
-- coordinated-omission correction as in wrk2), so bench/run.py also reports the achieved
-- rate: a run that fell behind its target shows it.
--
-- SCENARIO: uniform | hot | batch | reads (see bench/README.md).
-- Every POST carries a unique Idempotency-Key: NONCE-thread-counter-random (NONCE is unique per
-- run of this script). Each thread counts its answers by class in its own globals; done()
-- sums them over the `threads` table and prints one line "BENCH_JSON {...}" for bench/run.py.
-- Latencies are wrk's own (microseconds, from its histogram): p95 needs
-- latency:percentile(95) here, as wrk prints only p50/75/90/99.

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

-- Per-thread state (each thread has its own Lua environment).
local scenario, api_key, users, nonce, batch_size
local interval_ms = 0   -- fixed rate: ms between two requests of this thread (0 = no pacing)
local next_at_ms = nil  -- fixed rate: when this thread's next request is due
local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } cp_timespec;
  int clock_gettime(int clock_id, cp_timespec *tp);
]]
local now_ts = ffi.new("cp_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, now_ts)  -- CLOCK_MONOTONIC
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end
local counter = 0
local tokens = {}
local post_headers, read_headers

-- Per-thread counters, read by done() through thread:get().
ok = 0              -- 2xx
refused = 0         -- 422 insufficient_funds: an expected refusal, not an error
in_use = 0          -- 409 idempotency_key_in_use (never expected: keys are unique)
rate_limited = 0    -- 429 (bench/run.py turns Coinpurse's rate limits off)
client_errors = 0   -- any other 4xx
server_errors = 0   -- 5xx
other_status = 0    -- 1xx/3xx
posted = 0          -- batch: transfers posted (the "posted" field of each 200)
rejected = 0        -- batch: transfers refused inside a 200
error_sample = ""   -- the first unexpected answer, for the report

function init(args)
  scenario = args[1]
  api_key = args[2]
  users = tonumber(args[3])
  nonce = args[4]
  local tokens_file = args[5]
  batch_size = tonumber(args[6] or "1000")
  local rate = tonumber(args[7] or "0")
  if rate > 0 then interval_ms = 1000 / rate end
  math.randomseed(os.time() * 1000 + (id or 0) * 7919 + math.floor(os.clock() * 1e6))
  post_headers = {
    ["Content-Type"] = "application/json",
    ["X-API-Key"] = api_key,
  }
  read_headers = { ["X-API-Key"] = api_key }
  if scenario == "reads" then
    for line in io.lines(tokens_file) do
      local user, token = line:match("^(%S+)%s+(%S+)$")
      if user then
        table.insert(tokens, { user = user, auth = "Bearer " .. token })
      end
    end
    assert(#tokens > 0, "no tokens in " .. tostring(tokens_file))
  end
end

local function new_key()
  counter = counter + 1
  return string.format("%s-%d-%d-%d", nonce, id, counter, math.random(1, 1000000000))
end

local function user()
  return math.random(1, users)
end

-- Three distinct users.
local function three_users()
  local a = user()
  local b = user()
  while b == a do b = user() end
  local c = user()
  while c == a or c == b do c = user() end
  return a, b, c
end

local function wallet_change(op, u, amount, key)
  return string.format(
    '{"user_id":"%d","currency":"points","amount":%d,"description":"bench %s",'
      .. '"reference_id":"%s"}', u, amount, op, key)
end

-- uniform: 25% credits, 24% debits, 1% debits far above any balance (refused with
-- insufficient_funds, on purpose), 50% two-posting transfers among three random users.
local function uniform()
  local r = math.random(1, 100)
  local key = new_key()
  post_headers["Idempotency-Key"] = key
  if r <= 25 then
    return wrk.format("POST", "/internal/v1/wallet/credit", post_headers,
      wallet_change("credit", user(), math.random(1, 100), key))
  elseif r <= 49 then
    return wrk.format("POST", "/internal/v1/wallet/debit", post_headers,
      wallet_change("debit", user(), math.random(1, 100), key))
  elseif r == 50 then
    return wrk.format("POST", "/internal/v1/wallet/debit", post_headers,
      wallet_change("debit", user(), 1000000000000, key))
  end
  local a, b, c = three_users()
  local body = string.format(
    '{"postings":[{"source":"user:%d","destination":"user:%d","amount":%d,"currency":"points"},'
      .. '{"source":"user:%d","destination":"user:%d","amount":%d,"currency":"points"}],'
      .. '"kind":"transfer","description":"bench transfer","reference_id":"%s"}',
    a, b, math.random(1, 100), a, c, math.random(1, 10), key)
  return wrk.format("POST", "/internal/v1/transfers", post_headers, body)
end

-- hot: every transfer pays the same streamer (a gift), with a fee to the platform.
local function hot()
  local key = new_key()
  local u = user()
  post_headers["Idempotency-Key"] = key
  local body = string.format(
    '{"postings":[{"source":"user:%d","destination":"user:streamer","amount":%d,'
      .. '"currency":"points"},{"source":"user:%d","destination":"platform:fees","amount":%d,'
      .. '"currency":"points"}],"kind":"gift","description":"bench gift","reference_id":"%s"}',
    u, math.random(10, 100), u, math.random(1, 5), key)
  return wrk.format("POST", "/internal/v1/transfers", post_headers, body)
end

-- batch: batch_size one-posting transfers between random users in one call.
local function batch()
  local key = new_key()
  post_headers["Idempotency-Key"] = key
  local parts = {}
  for i = 1, batch_size do
    local a = user()
    local b = user()
    while b == a do b = user() end
    parts[i] = string.format(
      '{"postings":[{"source":"user:%d","destination":"user:%d","amount":%d,'
        .. '"currency":"points"}],"description":"bench batch","reference_id":"%s-%d"}',
      a, b, math.random(1, 100), key:sub(1, 50), i)
  end
  local body = '{"transfers":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/internal/v1/transfers/batch", post_headers, body)
end

-- reads: half balances (service key), half first pages of a user's history (user token).
local function reads()
  if math.random(1, 2) == 1 then
    return wrk.format("GET", "/internal/v1/wallet/balance/" .. user(), read_headers, nil)
  end
  local t = tokens[math.random(1, #tokens)]
  return wrk.format("GET", "/api/v1/wallet/transactions?limit=20",
    { ["Authorization"] = t.auth }, nil)
end

-- Fixed rate: wait for this thread's next slot (called by wrk before each request).
function delay()
  if interval_ms == 0 then return 0 end
  local now = now_ms()
  if next_at_ms == nil or next_at_ms < now then next_at_ms = now end
  local wait = next_at_ms - now
  next_at_ms = next_at_ms + interval_ms
  return math.floor(wait)
end

function request()
  if scenario == "uniform" then return uniform()
  elseif scenario == "hot" then return hot()
  elseif scenario == "batch" then return batch()
  elseif scenario == "reads" then return reads()
  end
  error("unknown scenario " .. tostring(scenario))
end

local function sample(status, body)
  if error_sample == "" then
    error_sample = tostring(status) .. " " .. string.sub(body or "", 1, 300)
  end
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    if scenario == "batch" then
      posted = posted + tonumber(body:match('"posted":(%d+)') or "0")
      rejected = rejected + tonumber(body:match('"rejected":(%d+)') or "0")
    end
  elseif status == 422 and body and body:find('"insufficient_funds"', 1, true) then
    refused = refused + 1
  elseif status == 409 then
    in_use = in_use + 1
    sample(status, body)
  elseif status == 429 then
    rate_limited = rate_limited + 1
    sample(status, body)
  elseif status >= 400 and status < 500 then
    client_errors = client_errors + 1
    sample(status, body)
  elseif status >= 500 then
    server_errors = server_errors + 1
    sample(status, body)
  else
    other_status = other_status + 1
    sample(status, body)
  end
end

local function json_string(s)
  s = s:gsub('\\', '\\\\'):gsub('"', '\\"'):gsub('[%c]', ' ')
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local names = { "ok", "refused", "in_use", "rate_limited", "client_errors", "server_errors",
                  "other_status", "posted", "rejected" }
  local totals = {}
  for _, name in ipairs(names) do totals[name] = 0 end
  local sample_text = ""
  for _, thread in ipairs(threads) do
    for _, name in ipairs(names) do
      totals[name] = totals[name] + (thread:get(name) or 0)
    end
    local s = thread:get("error_sample")
    if sample_text == "" and s and s ~= "" then sample_text = s end
  end
  local e = summary.errors
  local out = {}
  table.insert(out, string.format('"duration_us":%d', summary.duration))
  table.insert(out, string.format('"requests":%d', summary.requests))
  table.insert(out, string.format('"bytes":%d', summary.bytes))
  for _, name in ipairs(names) do
    table.insert(out, string.format('"%s":%d', name, totals[name]))
  end
  table.insert(out, string.format(
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"status_errors":%d',
    e.connect, e.read, e.write, e.timeout, e.status))
  table.insert(out, string.format(
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p95":%d,'
      .. '"p99":%d,"p999":%d}',
    latency.min, latency.mean, latency.stdev, latency.max, latency:percentile(50),
    latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency:percentile(99.9)))
  table.insert(out, '"error_sample":' .. json_string(sample_text))
  io.write("BENCH_JSON {" .. table.concat(out, ",") .. "}\n")
end
