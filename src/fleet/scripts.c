/* scripts.c: the budget's Lua scripts. Every change to the state is one of them, so it is
 * atomic on the server, and each takes the time from the server (TIME), never from a
 * client: clocks of the instances may differ by more than a lease.
 *
 * KEYS (one hash tag, so Redis Cluster keeps them on one node): 1 meta {cap, born,
 * grace, reconcile}, 2 held {instance: permits}, 3 lease (sorted set: instance by
 * expiry, ms), 4 demand {instance: wanted}, 5 seen {instance: last heartbeat, ms}, 6
 * lapsed {instance: permits held back while the server still has its connections}.
 *
 * Each script first drops the instances whose lease lapsed (their permits return to the
 * others). A missing meta means a fresh or restarted-empty Redis: the script that finds
 * it gone rebirths the state, and for a grace (1.5 heartbeats) ACQUIRE grants nothing,
 * so every live instance re-asserts what it holds (HEARTBEAT, or ACQUIRE for itself)
 * before anyone is given what only looks free. Shares are max-min fair by demand. */
#ifdef TIDEPOOL_HAVE_HIREDIS

#include "fleet_internal.h"

#define PRELUDE                                                                                                                                                \
    "local t = redis.call('TIME')\n"                                                                                                                           \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                                                                                  \
    "local function hnum(key, f) return tonumber(redis.call('HGET', key, f) or '0') or 0 "                                                                     \
    "end\n"                                                                                                                                                    \
    "local function expire()\n"                                                                                                                                \
    "  local keep = redis.call('HGET', KEYS[1], 'reconcile') == '1'\n"                                                                                         \
    "  local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)\n"                                                                                       \
    "  for _, i in ipairs(gone) do\n"                                                                                                                          \
    "    local h = hnum(KEYS[2], i)\n"                                                                                                                         \
    "    if keep and h > 0 then redis.call('HSET', KEYS[6], i, h) end\n"                                                                                       \
    "    redis.call('HDEL', KEYS[2], i) redis.call('HDEL', KEYS[4], i)\n"                                                                                      \
    "    redis.call('HDEL', KEYS[5], i) redis.call('ZREM', KEYS[3], i)\n"                                                                                      \
    "  end\n"                                                                                                                                                  \
    "end\n"                                                                                                                                                    \
    "local function meta(cap, grace)\n"                                                                                                                        \
    "  local m = redis.call('HMGET', KEYS[1], 'cap', 'born', 'grace')\n"                                                                                       \
    "  if not m[2] then\n"                                                                                                                                     \
    "    redis.call('HSET', KEYS[1], 'cap', cap, 'born', now, 'grace', grace)\n"                                                                               \
    "    return tonumber(cap), now, tonumber(grace), 1\n"                                                                                                      \
    "  end\n"                                                                                                                                                  \
    "  return tonumber(m[1]), tonumber(m[2]), tonumber(m[3]), 0\n"                                                                                             \
    "end\n" /* Water filling: the smallest demands are met first, the rest split evenly; the */ /* remainder of the division goes one by one in name order. */ \
    "local function shares(cap)\n"                                                                                                                             \
    "  local names = redis.call('ZRANGE', KEYS[3], 0, -1)\n"                                                                                                   \
    "  table.sort(names)\n"                                                                                                                                    \
    "  local list, total = {}, 0\n"                                                                                                                            \
    "  for _, v in ipairs(redis.call('HVALS', KEYS[6])) do total = total + tonumber(v) end\n"                                                                  \
    "  local back = total\n"                                                                                                                                   \
    "  for _, i in ipairs(names) do\n"                                                                                                                         \
    "    local e = {i = i, d = hnum(KEYS[4], i), h = hnum(KEYS[2], i)}\n"                                                                                      \
    "    total = total + e.h\n"                                                                                                                                \
    "    list[#list + 1] = e\n"                                                                                                                                \
    "  end\n"                                                                                                                                                  \
    "  local byd = {}\n"                                                                                                                                       \
    "  for k, e in ipairs(list) do byd[k] = e end\n"                                                                                                           \
    "  table.sort(byd, function(a, b) if a.d ~= b.d then return a.d < b.d end "                                                                                \
    "return a.i < b.i end)\n"                                                                                                                                  \
    "  local left, share = math.max(0, cap - back), {}\n"                                                                                                      \
    "  for k, e in ipairs(byd) do\n"                                                                                                                           \
    "    local s = math.min(e.d, math.floor(left / (#byd - k + 1)))\n"                                                                                         \
    "    share[e.i] = s\n"                                                                                                                                     \
    "    left = left - s\n"                                                                                                                                    \
    "  end\n"                                                                                                                                                  \
    "  for _, e in ipairs(list) do\n"                                                                                                                          \
    "    if left <= 0 then break end\n"                                                                                                                        \
    "    if e.d > share[e.i] then share[e.i] = share[e.i] + 1 left = left - 1 end\n"                                                                           \
    "  end\n"                                                                                                                                                  \
    "  return share, total, list\n"                                                                                                                            \
    "end\n" /* What the instances other than me want and do not hold. */                                                                                       \
    "local function unmet(list, me)\n"                                                                                                                         \
    "  local u = 0\n"                                                                                                                                          \
    "  for _, e in ipairs(list) do\n"                                                                                                                          \
    "    if e.i ~= me and e.d > e.h then u = u + e.d - e.h end\n"                                                                                              \
    "  end\n"                                                                                                                                                  \
    "  return u\n"                                                                                                                                             \
    "end\n"

/* ARGV: instance, held, demand, cap, lease_ms, grace_ms, reconcile (1: lapsed
 * instances' permits are held back until an instance reports their connections gone;
 * sticky once any instance asks). Re-asserts what the instance holds (this is what
 * rebuilds a lost state; a held-back entry of its own goes), renews its lease. Returns
 * cap, its share, all held, live instances, the others' unmet demand, whether it had no
 * lease (lapsed or lost), whether the state is in its grace, then the names of the
 * lapsed instances held back. */
static const char heartbeat[] =
    PRELUDE "expire()\n"
            "local me = ARGV[1]\n"
            "local cap, born, grace, reborn = meta(ARGV[4], ARGV[6])\n"
            "if reborn == 0 and tonumber(ARGV[4]) ~= cap then\n"
            "  cap = tonumber(ARGV[4]) redis.call('HSET', KEYS[1], 'cap', cap)\n"
            "end\n"
            "local missing = 0\n"
            "if redis.call('ZSCORE', KEYS[3], me) == false then missing = 1 end\n"
            "redis.call('HSET', KEYS[2], me, ARGV[2])\n"
            "redis.call('HSET', KEYS[4], me, ARGV[3])\n"
            "redis.call('HSET', KEYS[5], me, now)\n"
            "redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), me)\n"
            "redis.call('HDEL', KEYS[6], me)\n"
            "if ARGV[7] == '1' then redis.call('HSET', KEYS[1], 'reconcile', '1') end\n"
            "local share, total, list = shares(cap)\n"
            "local ingrace = 0\n"
            "if now < born + grace then ingrace = 1 end\n"
            "local out = {cap, share[me] or 0, total, #list, unmet(list, me), missing, ingrace}\n"
            "for _, n in ipairs(redis.call('HKEYS', KEYS[6])) do out[#out + 1] = n end\n"
            "return out\n";

/* ARGV: instance, want, held (as the instance counts it), demand, cap, lease_ms,
 * grace_ms. Grants up to want while the budget has room, beyond the instance's share
 * only while nobody else wants more; nothing during the grace. An instance with no lease
 * (lapsed, or the state lost) is first re-asserted with what it says it holds. Returns
 * granted, its share, all held, cap, whether it had no lease. */
static const char acquire[] =
    PRELUDE "expire()\n"
            "local me = ARGV[1]\n"
            "local cap, born, grace = meta(ARGV[5], ARGV[7])\n"
            "local missing = 0\n"
            "if redis.call('ZSCORE', KEYS[3], me) == false then\n"
            "  missing = 1\n"
            "  redis.call('HSET', KEYS[2], me, ARGV[3])\n"
            "  redis.call('HSET', KEYS[5], me, now)\n"
            "  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), me)\n"
            "end\n"
            "redis.call('HSET', KEYS[4], me, ARGV[4])\n"
            "local share, total, list = shares(cap)\n"
            "local mine = hnum(KEYS[2], me)\n"
            "if now < born + grace then return {0, share[me] or 0, total, cap, missing} end\n"
            "local grant = math.min(tonumber(ARGV[2]), cap - total)\n"
            "if grant > 0 and unmet(list, me) > 0 then\n"
            "  grant = math.min(grant, (share[me] or 0) - mine)\n"
            "end\n"
            "if grant < 0 then grant = 0 end\n"
            "if grant > 0 then redis.call('HINCRBY', KEYS[2], me, grant) end\n"
            "return {grant, share[me] or 0, total + grant, cap, missing}\n";

/* ARGV: instance, n. Gives n permits back (an instance with no lease holds none).
 * Returns what it holds now. */
static const char release[] =
    PRELUDE "expire()\n"
            "if redis.call('ZSCORE', KEYS[3], ARGV[1]) == false then return {0} end\n"
            "local h = hnum(KEYS[2], ARGV[1]) - tonumber(ARGV[2])\n"
            "if h < 0 then h = 0 end\n"
            "redis.call('HSET', KEYS[2], ARGV[1], h)\n"
            "return {h}\n";

/* ARGV: instance. The instance leaves: its permits return at once. */
static const char leave[] = "redis.call('HDEL', KEYS[2], ARGV[1])\n"
                            "redis.call('HDEL', KEYS[6], ARGV[1])\n"
                            "redis.call('HDEL', KEYS[4], ARGV[1])\n"
                            "redis.call('HDEL', KEYS[5], ARGV[1])\n"
                            "redis.call('ZREM', KEYS[3], ARGV[1])\n"
                            "return {1}\n";

/* ARGV: a lapsed instance, how many of its connections the server still has. Its held
 * back permits shrink to that (never grow), and go at 0. */
static const char reconcile[] =
    "local cur = tonumber(redis.call('HGET', KEYS[6], ARGV[1]) or '0') or 0\n"
    "local n = tonumber(ARGV[2])\n"
    "if n <= 0 then redis.call('HDEL', KEYS[6], ARGV[1]) return {0} end\n"
    "if n < cur then redis.call('HSET', KEYS[6], ARGV[1], n) return {n} end\n"
    "return {cur}\n";

/* No ARGV. Returns {-1} with no state, else cap, entries, then per instance (by name)
 * name, held, share, demand, lease left (ms), since its heartbeat (ms); then the lapsed
 * instances held back: name, held back, 0, 0, -1, -1. */
static const char status[] =
    PRELUDE "expire()\n"
            "local m = redis.call('HMGET', KEYS[1], 'cap', 'born')\n"
            "if not m[2] then return {-1} end\n"
            "local cap = tonumber(m[1])\n"
            "local share, total, list = shares(cap)\n"
            "local lapsed = redis.call('HGETALL', KEYS[6])\n"
            "local out = {cap, #list + #lapsed / 2}\n"
            "for _, e in ipairs(list) do\n"
            "  local exp = tonumber(redis.call('ZSCORE', KEYS[3], e.i)) or now\n"
            "  out[#out + 1] = e.i\n"
            "  out[#out + 1] = e.h\n"
            "  out[#out + 1] = share[e.i] or 0\n"
            "  out[#out + 1] = e.d\n"
            "  out[#out + 1] = exp - now\n"
            "  out[#out + 1] = now - hnum(KEYS[5], e.i)\n"
            "end\n"
            "for k = 1, #lapsed, 2 do\n"
            "  out[#out + 1] = lapsed[k]\n"
            "  out[#out + 1] = tonumber(lapsed[k + 1])\n"
            "  out[#out + 1] = 0 out[#out + 1] = 0 out[#out + 1] = -1 out[#out + 1] = -1\n"
            "end\n"
            "return out\n";

const char *tp__fleet_script(int i)
{
    switch (i) {
    case TP__FLEET_HEARTBEAT:
        return heartbeat;
    case TP__FLEET_ACQUIRE:
        return acquire;
    case TP__FLEET_RELEASE:
        return release;
    case TP__FLEET_LEAVE:
        return leave;
    case TP__FLEET_RECONCILE:
        return reconcile;
    default:
        return status;
    }
}

#endif
