"""The Lua scripts of :class:`~bitrix_mail_async.redis.RedisLimiter` and the bounds they keep.

Kept apart from :mod:`bitrix_mail_async.redis` (whose docstring describes the design) because
they are text for Redis, not Python: the GCRA buckets (acquire: the learned bucket and the
peak), the shared 429 cooldown (report, read) and the shared adaptive rate. This module needs
no redis-py.
"""

from __future__ import annotations

from typing import Final

from bitrix_mail_async._envelope import MAX_RETRY_AFTER

__all__ = [
    "ACQUIRE_LUA",
    "COOLDOWN_LUA",
    "MAX_COOLDOWN",
    "MAX_SLOT_WAIT",
    "REPORT_LUA",
    "STATE_TTL_MS",
]

# The learned rate outlives short pauses but not a quiet afternoon; by then the additive
# increase would have restored the configured rate anyway.
STATE_TTL_MS: Final = 600_000
#: The furthest ahead (seconds) a slot of the shared bucket is reserved, and the longest one
#: sleep on Redis's word: a slot further out is asked for again when it is within reach.
#: The length of the gateway's own window: only a queue of over a minute of calls meets it.
MAX_SLOT_WAIT: Final = 60.0
#: The longest shared cooldown (seconds): no client honours a Retry-After over a day
#: (:data:`~bitrix_mail_async._envelope.MAX_RETRY_AFTER`); one second more for the jitter.
MAX_COOLDOWN: Final = MAX_RETRY_AFTER + 1.0

# All scripts: KEYS = gcra (TAT, µs of Redis time), cooldown ("<end>:<length>", µs), rate
# (hash), peak (TAT, µs; the acquire script's only). Times are µs since the epoch as doubles
# (exact below 2^53, i.e. until year 2255), written with %.0f because Lua's tostring would
# round them to 14 digits. A cooldown written without its length (by an earlier version) is
# taken to be MAX_COOLDOWN long.
_PRELUDE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local repaired = 0
local function fmt(x) return string.format('%.0f', x) end
local function learned(adaptive)
  if not adaptive then return 1, 0, 0 end
  local st = redis.call('HMGET', KEYS[3], 'scale', 'generation', 'last_change')
  return tonumber(st[1]) or 1, tonumber(st[2]) or 0, tonumber(st[3]) or 0
end
local function shape(per_second, capacity, scale)
  local cap = math.max(1, math.floor(capacity * scale + 0.5))
  local interval = 1000000 / (per_second * scale)
  return interval, cap * interval
end
local function set_cooldown(ends, length)
  redis.call('SET', KEYS[2], fmt(ends) .. ':' .. fmt(length),
             'PX', fmt(math.max(1, math.ceil((ends - now) / 1000))))
end
local function cooldown_end()
  local raw = redis.call('GET', KEYS[2])
  if not raw then return 0 end
  local ends, length = string.match(raw, '^(%d+):(%d+)$')
  if ends then
    ends, length = tonumber(ends), tonumber(length)
  else
    ends, length = tonumber(raw) or 0, $MAX_COOLDOWN
  end
  if ends - now > length then
    -- more left than it was ever set for: Redis's clock went back since; restart it
    ends = now + length
    set_cooldown(ends, length)
    repaired = 1
  end
  return ends
end
"""


def _script(body: str) -> str:
    """A script of the limiter: the prelude, ``body``, and the constants they name."""
    return (_PRELUDE + body).replace("$MAX_COOLDOWN", str(round(MAX_COOLDOWN * 1_000_000)))


# ARGV: per_second, capacity, adaptive (0/1), increase, quiet period (µs), rate TTL (ms),
#       horizon (µs), reach (µs: the most a burst and a slot add to the horizon),
#       peak interval and peak tolerance (µs; 0: no peak). KEYS[4] = peak (its TAT, µs).
# The slot is the first time both GCRAs admit a call: the learned bucket's and the fixed peak
# bucket's (the portal's rate, which spends the burst). Each TAT then advances from the later
# of its own TAT and the slot, as if the call came at the slot.
# Returns {wait µs, scale, generation, reserved (1) or "ask again after the wait" (0),
#          repaired (1: some state lay past its bounds)}.
ACQUIRE_LUA: Final = _script(
    """
local per_second, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local adaptive = ARGV[3] == '1'
local horizon, reach = tonumber(ARGV[7]), tonumber(ARGV[8])
local peak_interval, peak_tau = tonumber(ARGV[9]), tonumber(ARGV[10])
local scale, generation, last_change = learned(adaptive)
if adaptive then
  if last_change > now then
    -- a change "in the future": Redis's clock went back; the quiet period counts from now
    last_change = now
    redis.call('HSET', KEYS[3], 'last_change', fmt(now))
    repaired = 1
  end
  if scale < 1 and now - last_change >= tonumber(ARGV[5]) then
    scale = math.min(1, scale * (1 + tonumber(ARGV[4])))
    redis.call('HSET', KEYS[3], 'scale', tostring(scale), 'last_change', fmt(now))
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
local interval, tau = shape(per_second, capacity, scale)
local cooldown = cooldown_end()
-- No slot is reserved past the horizon and a cooldown sets the TAT at most a burst past its
-- end: a TAT further out is Redis's clock gone back. Taken as a full bucket (the safe side).
local limit = now + math.max(horizon, cooldown - now) + reach
local function stored_tat(key, full)
  local stored = tonumber(redis.call('GET', key)) or now
  if stored > limit then
    stored = now + full
    redis.call('SET', key, fmt(stored), 'PX', fmt(math.ceil(full / 1000) + 1000))
    repaired = 1
  end
  return math.max(stored, now)
end
local base = stored_tat(KEYS[1], tau)
local peak_base = 0
if peak_interval > 0 then peak_base = stored_tat(KEYS[4], peak_tau) end
if cooldown > now then
  -- a bucket of the portal was full when the 429 came: resume at a rate, not in a burst
  if peak_interval > 0 then
    peak_base = math.max(peak_base, cooldown + peak_tau - peak_interval)
  else
    base = math.max(base, cooldown + tau - interval)
  end
end
local slot = math.max(now, base + interval - tau)
if peak_interval > 0 then slot = math.max(slot, peak_base + peak_interval - peak_tau) end
local wait = slot - now
if wait > horizon then
  return {fmt(wait - horizon), tostring(scale), generation, 0, repaired}
end
local tat = math.max(base, slot) + interval
redis.call('SET', KEYS[1], fmt(tat), 'PX', fmt(math.ceil((tat - now) / 1000) + 1000))
if peak_interval > 0 then
  local peak_tat = math.max(peak_base, slot) + peak_interval
  redis.call('SET', KEYS[4], fmt(peak_tat), 'PX', fmt(math.ceil((peak_tat - now) / 1000) + 1000))
end
return {fmt(wait), tostring(scale), generation, 1, repaired}
"""
)

# Returns {cooldown left µs, repaired}.
COOLDOWN_LUA: Final = _script(
    """
local left = math.max(0, cooldown_end() - now)
return {fmt(left), repaired}
"""
)

# ARGV: retry_after (µs), permit generation (-1: none), adaptive (0/1), decrease, min scale,
#       per_second, capacity, rate TTL (ms), peak interval and tolerance (µs; 0: no peak).
# Returns {cooldown left µs, scale, generation}.
REPORT_LUA: Final = _script(
    """
local retry_after = math.min(tonumber(ARGV[1]), $MAX_COOLDOWN)
local adaptive = ARGV[3] == '1'
local current = cooldown_end()
local ends = math.max(current, now + retry_after)
if ends > current and ends > now then
  set_cooldown(ends, retry_after)
end
local scale, generation = learned(adaptive)
if adaptive and tonumber(ARGV[2]) == generation then
  generation = generation + 1
  scale = math.max(tonumber(ARGV[5]), scale * tonumber(ARGV[4]))
  redis.call('HSET', KEYS[3], 'scale', tostring(scale), 'generation', generation,
             'last_change', fmt(now))
  redis.call('PEXPIRE', KEYS[3], ARGV[8])
end
if ends > now then
  -- full when the cooldown ends: the peak when there is one (what is left of the burst is
  -- spent at the peak rate), else the bucket (calls resume at its rate)
  local key, interval, tau = KEYS[4], tonumber(ARGV[9]), tonumber(ARGV[10])
  if interval <= 0 then
    key = KEYS[1]
    interval, tau = shape(tonumber(ARGV[6]), tonumber(ARGV[7]), scale)
  end
  local full = ends + tau - interval
  if full > (tonumber(redis.call('GET', key)) or 0) then
    redis.call('SET', key, fmt(full), 'PX', fmt(math.ceil((full - now) / 1000) + 1000))
  end
end
return {fmt(math.max(0, ends - now)), tostring(scale), generation}
"""
)
