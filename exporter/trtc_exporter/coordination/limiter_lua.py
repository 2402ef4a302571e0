"""The limiter's Lua scripts, run atomically by Redis (EVALSHA; one script runs at a time).

Times are integer microseconds of the Redis server's clock (``TIME``), so the replicas' clocks do
not matter: every grant and every window is measured on one clock. Since Redis 5 scripts are
replicated by their effects, which is what allows writes after the non-deterministic ``TIME``
(https://redis.io/docs/interact/programmability/eval-intro/, "Script effects replication").
ARGV[1] may carry a fixed "now" instead, which only tests use (a fake clock).

The AIMD state (effective rate, ceiling, guard, cool-down, last reaction, pause, good rate,
hold) lives in one HASH per account and action and follows ``budget.RateLimiter`` step by step,
so the adaptive cut applies to the limit shared by every replica. The send times of accepted
requests (every replica's) lie in one ZSET beside it: a throttle whose message states no limit
is cut to what the server accepted from all replicas together.

Send times cross replicas as ages: the client passes how long ago (by its own monotonic clock)
the request was sent, and the script subtracts that from its ``now``, so no replica's clock
offset enters the shared state.
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
                'guard', 'last_widen', 'last_reaction', 'paused_until', 'good', 'hold'}
local function load(key, now)
  local v = redis.call('HMGET', key, unpack(FIELDS))
  local s = {}
  for i, f in ipairs(FIELDS) do s[f] = tonumber(v[i]) end
  local fresh = {configured = p.configured, rate = p.configured, ceiling = p.configured,
                 cooldown_until = -1e18, last_adjust = now, last_cut = -1e18, guard = p.guard_us,
                 last_widen = -1e18, last_reaction = -1e18, paused_until = -1e18,
                 good = p.configured, hold = p.hold_us}
  if s.rate == nil then
    s = fresh
  else
    -- a state written by an older version (rolling upgrade) lacks the newer fields
    for f, v in pairs(fresh) do if s[f] == nil then s[f] = v end end
  end
  if s.configured ~= p.configured then  -- a reload changed the configured rate
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
  if elapsed <= 0 or s.rate >= s.ceiling then
    s.last_adjust = now
    return
  end
  s.rate = math.min(s.ceiling, s.rate + elapsed / 1e6 * p.increase)
  s.last_adjust = now
  if s.rate >= s.configured then  -- fully recovered: the next drop starts afresh
    s.good = s.configured
    s.hold = p.hold_us
  end
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
-- Send times of accepted requests, given as ages (us before now, comma-separated): recorded in
-- the accepted ZSET, which keeps two windows before the newest one (as budget.RateLimiter).
local function record(accepted, seq, ages, now)
  local newest = nil
  for age in string.gmatch(ages, '%d+') do
    local sent = now - tonumber(age)
    redis.call('ZADD', accepted, sent, redis.call('INCR', seq))
    newest = math.max(newest or sent, sent)
  end
  if newest == nil then return end
  redis.call('ZREMRANGEBYSCORE', accepted, '-inf',
             '(' .. string.format('%.0f', newest - 2 * p.window_us))
  redis.call('PEXPIRE', accepted, p.keep_ms)
  redis.call('PEXPIRE', seq, p.keep_ms)
end
local function shape(s, share)  -- grants per window and the span they fill, at the shared rate
  local rate = s.rate * share
  local per_window = math.max(1, math.floor(rate * p.window_us / 1e6 + 1e-9))
  return rate, per_window, math.floor(per_window * 1e6 / rate) + s.guard
end
"""

# KEYS: reserved, aimd, seq, members, accepted. ARGV[3]: ages of accepted requests not yet
# recorded (see record). Plans the earliest start: 1/rate after the last reservation and one
# span after the reservation per_window places back.
# Returns {id, slot, now, rate, guard}.
RESERVE = PRELUDE + """
local now = now_us()
record(KEYS[5], KEYS[3], ARGV[3], now)
local s = load(KEYS[2], now)
recover(s, now)
save(KEYS[2], s)
local rate, per_window, span = shape(s, share_now(KEYS[4], now))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span - p.window_us - 1e6)
local slot = math.max(now, s.paused_until)
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
# a late start delays only the starts it really crowds, lateness does not add up. A slot moved
# behind a pause (THROTTLED) is waited for first.
# With p.unsent_us > 0 (confirming writes) a start is recorded as unsent: its score is the
# deadline, grant + unsent_us, in the future, so it counts in every window until SENT moves it
# to the time its request was written (or, never reported, until the deadline plus one span).
# A window full of unsent starts is asked about again after p.unsent_poll_us.
# Returns {1, now} or {0, wait_us}.
CONFIRM = PRELUDE + """
local now = now_us()
local s = load(KEYS[3], now)
recover(s, now)
local planned = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[3]) or now)
local due = math.max(planned, s.paused_until)
if due > now then return {0, math.ceil(due - now)} end
local rate, per_window, span = shape(s, share_now(KEYS[4], now))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf',
           string.format('%.0f', now - span - p.window_us - 1e6))
local inside = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. string.format('%.0f', now - span),
                          '+inf', 'WITHSCORES')
local count = #inside / 2
if count >= per_window then
  local oldest = tonumber(inside[2 * (count - per_window) + 2])
  if oldest > now then return {0, p.unsent_poll_us} end
  return {0, math.max(1, oldest + span - now)}
end
redis.call('ZADD', KEYS[2], now + math.max(0, p.unsent_us), ARGV[3])
redis.call('PEXPIRE', KEYS[2], math.max(p.keep_ms, math.ceil(p.unsent_us / 1000) + p.keep_ms))
return {1, now}
"""

# KEYS: started. ARGV[3]: the reservation id whose request has been written. Its start moves
# to now (at or after the write: the report comes after it), unless it is gone (trimmed).
SENT = PRELUDE + """
redis.call('ZADD', KEYS[1], 'XX', now_us(), ARGV[3])
return 1
"""

# KEYS: aimd, accepted, reserved, started, members, seq. ARGV[3]: the API's stated limit (0 if
# none), ARGV[4]: '1' when one over the limit at our own rate, ARGV[5]: the throttled request's
# age (us since it was sent, '' when unknown), ARGV[6]: ages of accepted requests not yet
# recorded. Mirrors budget.RateLimiter.on_throttled: with an age,
# a throttle of a request sent before the last reaction is stale, and an unstated limit is cut
# to what the server accepted in the window before the request (every replica's requests),
# pauses one window (waiting reservations move behind it, spaced at the new rate) and holds the
# new rate before probing; without one, the multiplicative cut and fixed cool-down.
# Returns 1 when it acted.
THROTTLED = PRELUDE + """
local now = now_us()
record(KEYS[2], KEYS[6], ARGV[6], now)
local s = load(KEYS[1], now)
local hint, marginal = tonumber(ARGV[3]), ARGV[4] == '1'
local sent = ARGV[5] ~= '' and now - tonumber(ARGV[5]) or nil
local floor = s.configured * p.floor_fraction
local before = s.rate
local stale
if sent == nil then stale = now < s.cooldown_until else stale = sent < s.last_reaction end
if hint > 0 and hint < before then
  s.rate = math.max(floor, hint)
  s.ceiling = s.rate
  s.last_cut = now
elseif stale then
  return 0
elseif marginal and s.guard < p.max_guard_us then
  s.guard = math.min(p.max_guard_us, math.max(2 * s.guard, 10000))
  s.last_widen = now
elseif sent ~= nil then
  local probing = before > s.good + 1e-9
  local accepted = redis.call('ZCOUNT', KEYS[2], '(' .. string.format('%.0f', sent - p.window_us),
                              string.format('%.0f', sent))
  local target
  if probing then target = s.good
  elseif accepted > 0 then target = math.min(before, accepted * 1e6 / p.window_us) * p.margin
  else target = before * p.decrease end
  s.rate = math.max(floor, target)
  s.good = s.rate
  if probing then s.hold = math.min(p.max_hold_us, 2 * s.hold) else s.hold = p.hold_us end
  s.paused_until = now + p.window_us
  -- reservations not started yet move behind the pause, spaced at the new rate
  local _, per_window, span = shape(s, share_now(KEYS[5], now))
  local spacing = span / per_window
  local slot = s.paused_until
  -- (slots older than two windows are long confirmed or abandoned: their starts may be trimmed)
  local waiting = redis.call('ZRANGEBYSCORE', KEYS[3], string.format('%.0f', now - 2 * p.window_us),
                             '+inf')
  for _, id in ipairs(waiting) do
    if not redis.call('ZSCORE', KEYS[4], id) then
      redis.call('ZADD', KEYS[3], math.floor(slot), id)
      slot = slot + spacing
    end
  end
  s.last_cut = now
  s.last_reaction = now
  s.cooldown_until = s.paused_until + s.hold
  s.last_adjust = s.cooldown_until
  save(KEYS[1], s)
  return 1
else
  s.last_cut = now
  s.rate = math.max(floor, before * p.decrease)
  s.ceiling = math.max(s.rate, before * p.ceiling_margin)
end
s.cooldown_until = now + p.cooldown_us
s.last_adjust = now
s.last_reaction = now
save(KEYS[1], s)
return 1
"""

# KEYS: accepted, seq. ARGV[3]: ages of accepted requests (see record).
ACCEPTED = PRELUDE + """
record(KEYS[1], KEYS[2], ARGV[3], now_us())
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
