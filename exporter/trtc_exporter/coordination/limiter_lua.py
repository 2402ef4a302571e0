"""The limiter's Lua scripts, run atomically by Redis (EVALSHA; one script runs at a time).

Times are integer microseconds of the Redis server's clock (``TIME``), so the replicas' clocks do
not matter: every grant and every window is measured on one clock. Since Redis 5 scripts are
replicated by their effects, which is what allows writes after the non-deterministic ``TIME``
(https://redis.io/docs/interact/programmability/eval-intro/, "Script effects replication").
ARGV[1] may carry a fixed "now" instead, which only tests use (a fake clock).

The AIMD state (effective rate, ceiling, guard, cool-down) lives in one HASH per account and
action and follows ``budget.RateLimiter`` step by step, so the adaptive cut applies to the
limit shared by every replica.
"""

from __future__ import annotations

PRELUDE = """
local function now_us()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local p = cjson.decode(ARGV[2])
local FIELDS = {'configured', 'rate', 'ceiling', 'cooldown_until', 'last_adjust', 'last_cut',
                'guard', 'last_widen'}
local function load(key, now)
  local v = redis.call('HMGET', key, unpack(FIELDS))
  local s = {}
  for i, f in ipairs(FIELDS) do s[f] = tonumber(v[i]) end
  if s.rate == nil then
    s = {configured = p.configured, rate = p.configured, ceiling = p.configured,
         cooldown_until = -1e18, last_adjust = now, last_cut = -1e18, guard = p.guard_us,
         last_widen = -1e18}
  elseif s.configured ~= p.configured then  -- a reload changed the configured rate
    local adapted = s.rate < s.configured
    s.rate = adapted and math.min(s.rate, p.configured) or p.configured
    s.ceiling = p.configured
    s.configured = p.configured
  end
  return s
end
local function save(key, s)
  local flat = {}
  for _, f in ipairs(FIELDS) do
    flat[#flat + 1] = f
    flat[#flat + 1] = string.format('%.17g', s[f])
  end
  redis.call('HSET', key, unpack(flat))
  redis.call('PEXPIRE', key, p.keep_ms)
end
local function recover(s, now)
  if now >= s.last_widen + p.memory_us then s.guard = p.guard_us end
  local forget_at = s.last_cut + p.memory_us
  if s.rate >= s.configured or now < s.cooldown_until then
    s.last_adjust = math.max(s.last_adjust, math.min(now, s.cooldown_until))
    return
  end
  if now >= forget_at and s.ceiling < s.configured then
    s.ceiling = s.configured
    s.last_adjust = math.max(s.last_adjust, forget_at)
  end
  local elapsed = now - s.last_adjust
  if elapsed > 0 and s.rate < s.ceiling then
    s.rate = math.min(s.ceiling, s.rate + elapsed / 1e6 * p.increase)
  end
  s.last_adjust = now
end
-- The share of the shared rate usable now: the caller's (p.share, < 1 while rejoining), and at
-- most live / (live + lapsed) members, where a lapsed member's heartbeat expired less than
-- p.lapse_us ago: it may be cut off from Redis and spending its fallback share on its own.
-- A member that left cleanly removed its entry and holds nothing back.
local function share_now(members, now)
  if members == nil or p.lapse_us <= 0 then return p.share end
  local at = string.format('%.0f', now)
  local live = math.max(1, redis.call('ZCOUNT', members, '(' .. at, '+inf'))
  local lapsed = redis.call('ZCOUNT', members,
                            '(' .. string.format('%.0f', now - p.lapse_us), at)
  return math.min(p.share, live / (live + lapsed))
end
local function shape(s, share)  -- grants per window and the span they fill, at the shared rate
  local rate = s.rate * share
  local per_window = math.max(1, math.floor(rate * p.window_us / 1e6 + 1e-9))
  return rate, per_window, math.floor(per_window * 1e6 / rate) + s.guard
end
"""

# KEYS: reserved, aimd, seq, members. Plans the earliest start: 1/rate after the last
# reservation and one span after the reservation per_window places back.
# Returns {id, slot, now, rate, guard}.
RESERVE = PRELUDE + """
local now = now_us()
local s = load(KEYS[2], now)
recover(s, now)
save(KEYS[2], s)
local rate, per_window, span = shape(s, share_now(KEYS[4], now))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span - p.window_us - 1e6)
local slot = now
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if last[2] then slot = math.max(slot, tonumber(last[2]) + math.floor(1e6 / rate)) end
local anchor = redis.call('ZREVRANGE', KEYS[1], per_window - 1, per_window - 1, 'WITHSCORES')
if anchor[2] then slot = math.max(slot, tonumber(anchor[2]) + span) end
local id = redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], p.keep_ms)
redis.call('ZADD', KEYS[1], slot, id)
redis.call('PEXPIRE', KEYS[1], p.keep_ms)
return {id, slot, now, string.format('%.17g', s.rate), s.guard}
"""

# KEYS: reserved, started, aimd, members. ARGV[3]: the reservation id. The strict check: a start is
# granted only while fewer than per_window starts lie in (now - span, now]; every start is
# recorded at the server time of its grant, so no window of one span ever holds more than
# per_window starts, whatever order the replicas come in. The plan (reserved) keeps its slots:
# a late start delays only the starts it really crowds, lateness does not add up.
# Returns {1, now} or {0, wait_us}.
CONFIRM = PRELUDE + """
local now = now_us()
local s = load(KEYS[3], now)
recover(s, now)
local rate, per_window, span = shape(s, share_now(KEYS[4], now))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - span - p.window_us - 1e6)
local inside = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. (now - span), now, 'WITHSCORES')
local count = #inside / 2
if count >= per_window then
  local oldest = tonumber(inside[2 * (count - per_window) + 2])
  return {0, math.max(1, oldest + span - now)}
end
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('PEXPIRE', KEYS[2], p.keep_ms)
return {1, now}
"""

# KEYS: aimd. ARGV[3]: the API's stated limit (0 if none), ARGV[4]: '1' when one over the
# limit at our own rate. Mirrors budget.RateLimiter.on_throttled. Returns 1 when it acted.
THROTTLED = PRELUDE + """
local now = now_us()
local s = load(KEYS[1], now)
local hint, marginal = tonumber(ARGV[3]), ARGV[4] == '1'
local floor = s.configured * p.floor_fraction
local before = s.rate
if hint > 0 and hint < before then
  s.rate = math.max(floor, hint)
  s.ceiling = s.rate
  s.last_cut = now
elseif now < s.cooldown_until then
  return 0
elseif marginal and s.guard < p.max_guard_us then
  s.guard = math.min(p.max_guard_us, math.max(2 * s.guard, 10000))
  s.last_widen = now
else
  s.last_cut = now
  s.rate = math.max(floor, before * p.decrease)
  s.ceiling = math.max(s.rate, before * p.ceiling_margin)
end
s.cooldown_until = now + p.cooldown_us
s.last_adjust = now
save(KEYS[1], s)
return 1
"""

# KEYS: aimd, members. Returns {rate, guard_us} after recovery: the effective shared rate times
# the share usable now.
STATUS = PRELUDE + """
local now = now_us()
local s = load(KEYS[1], now)
recover(s, now)
save(KEYS[1], s)
return {string.format('%.17g', s.rate * share_now(KEYS[2], now)), s.guard}
"""
