//! The Lua scripts that change what a name points at. Each runs atomically
//! on the server that holds the object's slot; every key of one object
//! shares the hash tag `{T}`, so chunk keys computed in a script live on
//! the same slot as the pointer it was given.

use std::sync::OnceLock;

use redis::Script;

/// What becomes of a version's chunks once no name points at it: when no
/// fetch of them is in progress, they expire in a second, so that a name
/// replaced again and again holds the server's memory of about one
/// version, not of every version of the last minute; otherwise they are
/// kept for the fetches in progress, at least `least` ms and twice the
/// time to read `len` bytes at 100 MB/s, counted from now. A fetch adds
/// its token to the version's set `readers` before its first chunk,
/// renews the set's expiry (that grace) with each batch, and removes the
/// token with its last (store.rs, `Lease`); a fetcher that died holds the
/// chunks no longer than the set lives. The second is for a fetch that
/// read the pointer just before the replace and marks the version just
/// after; one slower than that finds a chunk missing and reads the name
/// again. An expiry, not a delete: Redis frees a string it deletes there
/// and then, inside the publish (a 1 MiB set took about 0.1x `SET`'s time
/// more), where an expired key is freed by the server's expiry cycle. (A
/// macro: `concat!` takes only literals.)
macro_rules! retire {
    () => {
        r#"
local function retire(chunk_prefix, n, readers, least, len)
  if n == 0 then return end
  if redis.call('SCARD', readers) > 0 then
    local grace = math.max(least, math.floor(2 * tonumber(len or '0') / 100000))
    for i = 0, n - 1 do redis.call('PEXPIRE', chunk_prefix .. i, grace) end
  else
    for i = 0, n - 1 do redis.call('PEXPIRE', chunk_prefix .. i, 1000) end
  end
end
"#
    };
}

/// The bookkeeping of the usage count that the scripts share.
///
/// `clock()`: the server's time in ms, by which leases lapse (hosts'
/// clocks may differ; the server's is the one all agree on).
///
/// `reap(held, leases, used)`: a write reserves bytes under its id with a
/// lease (`RESERVE`), renewed while it writes; a write that died (a
/// gunicorn worker killed at its timeout) holds them until the lease
/// lapses, and then the next reservation that asks for more room, a
/// publish that would not fit otherwise, or `gc` gives them back. Returns
/// the server's time in ms and the bytes given back.
///
/// `moved(cfg)`: while an `fsck` recounts (the settings' field `recount`,
/// the number in progress), every change of the count is counted in
/// `moves`, so that a recount that ran beside one knows its figure is
/// stale (maintenance.rs).
macro_rules! accounting {
    () => {
        r#"
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function reap(held, leases, used)
  local now = clock()
  local dead = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 100)
  local freed = 0
  for _, id in ipairs(dead) do
    freed = freed + tonumber(redis.call('HGET', held, id) or '0')
    redis.call('HDEL', held, id)
  end
  if #dead > 0 then
    redis.call('ZREM', leases, unpack(dead))
    if freed > 0 then
      local count = tonumber(redis.call('GET', used) or '0')
      redis.call('SET', used, math.max(0, count - freed))
    end
  end
  return now, freed
end
local function moved(cfg)
  if redis.call('HEXISTS', cfg, 'recount') == 1 then redis.call('HINCRBY', cfg, 'moves', 1) end
end
"#
    };
}

/// Gives back a fetch's lease on a version it read whole (store.rs,
/// `Lease`), and when it was the last fetch of a version replaced or
/// deleted meanwhile, lets the version's chunks go within a second instead
/// of the rest of their grace (`retire!`). Sent as `EVAL`, whose body a
/// server never lacks (`EVALSHA` may meet a server that lost its scripts,
/// and a cluster pipeline does not route it).
///
/// `KEYS`: the version's set of fetches in progress, the name's pointer.
/// `ARGV`: the fetch's token, the version, its chunk count, the prefix of
/// its chunk keys (`Keys::chunk_prefix` and the version and `:`). Returns 1.
pub(crate) const RELEASE: &str = "redis.call('SREM', KEYS[1], ARGV[1]) \
if redis.call('SCARD', KEYS[1]) == 0 and redis.call('HGET', KEYS[2], 'v') ~= ARGV[2] then \
for i = 0, tonumber(ARGV[3]) - 1 do local k = ARGV[4] .. i \
if redis.call('PTTL', k) > 1000 then redis.call('PEXPIRE', k, 1000) end end end return 1";

/// Publishes a version (or checks that it can be published).
///
/// `KEYS`: pointer, lock, and on a single server also the usage counter,
/// the settings, the namespace's catalog, the set of namespaces, and the
/// writes' reservations and their leases (the bookkeeping is then part of
/// the same atomic step).
///
/// `ARGV`: expected current version (`*` any, `-` none), lock token (`""`
/// none), new version, chunk count (0: the payload is inline), least grace
/// in ms for the old chunks, chunk key prefix, the bytes the object adds
/// to the count (on a single server; what its write's reservation holds
/// is taken from them, and the reservation ends), name, key hex,
/// namespace, `1` when the old object's description is to be kept (the
/// new one is then empty), the prefix of the keys of fetches in progress
/// (`Keys::readers_prefix`), the key of the name's last delete's record
/// (`Keys::deleted`), then the values of the pointer's fields `len
/// n cs x c desc t ss` (keys.rs, `NewVersion::field_values`), the key of
/// the staged pointer (`Keys::staged`; `""` when there is none), the id of
/// the write's reservation (`""`: none) and, for an inline payload not
/// staged, the payload. Field names are not sent:
/// each argument costs the server a conversion, and a small write is
/// mostly arguments.
///
/// An inline payload of a few KiB or more is not sent as an argument: the
/// server copies a script's arguments into Lua at about 1 µs per KiB (a
/// 256 KiB write cost the server 350 µs, `SET` of the same bytes 2 µs).
/// The writer sends it ahead, in the same pipeline, as a whole new pointer
/// under the staged key with a pending expiry, and the script renames that
/// onto the name's pointer (a move, not a copy) and adds `seq` and `pv`.
/// Whatever the script answers but `OK`, it deletes the staged pointer.
///
/// The replaced version's chunks expire in a second when no fetch of them
/// is in progress, and get a grace expiry otherwise (`retire!`). The
/// pointer keeps the version it replaced (`pv`), and a delete's record the
/// version it deleted, so that a publish run again after its reply was
/// lost recognises its version once another write replaced it.
///
/// Returns `{OK, seq, old stored size, old version}` (`{OK, seq, 0, ""}`
/// when the version is published already), `{SUPERSEDED}` (published
/// already, then replaced or deleted by another writer), `{LOCKED}`,
/// `{CONFLICT, current}`, `{MISSING, i}` (chunk `i`, or -1: the staged
/// pointer), `{FULL, used, capacity, stored
/// size of the object replaced}`, or
/// `{DESCRIBED, old description}` when a description to keep was found
/// (nothing is written: the writer sends it again with that description).
const PUBLISH: &str = concat!(
    retire!(),
    accounting!(),
    r#"
local cur = redis.call('HMGET', KEYS[1], 'v', 'n', 'ss', 'seq', 'len', 'desc', 'pv')
local staged = ARGV[22] ~= '' and ARGV[22] or nil
local function unstaged(reply)
  if staged then redis.call('DEL', staged) end
  return reply
end
-- This very version is published already: this is the run again of a call
-- whose connection closed under it (conn.rs, Pool::run). Running it twice
-- would retire the version's own chunks as a replaced version's.
-- Its chunks lose any expiry again (their writes are sent with NX, so a run
-- again leaves them as they are; this holds if one was not).
if cur[1] == ARGV[3] then
  for i = 0, tonumber(ARGV[4]) - 1 do redis.call('PERSIST', ARGV[6] .. ARGV[3] .. ':' .. i) end
  return unstaged({'OK', tonumber(cur[4] or '0'), 0, ''})
end
-- Published already, and replaced since by another writer's publish, or
-- deleted: a run again would put back the older value over theirs (or,
-- expecting a version, report a conflict with the write that came after
-- its own). It answers as the first run did, and changes nothing. (Two
-- writes of the name between the first run and this one are not seen.)
if cur[7] == ARGV[3] then return unstaged({'SUPERSEDED'}) end
if not cur[1] then
  local deleted = redis.call('GET', ARGV[13])
  if deleted and string.sub(deleted, -#ARGV[3] - 1) == ':' .. ARGV[3] then
    return unstaged({'SUPERSEDED'})
  end
end
if ARGV[2] ~= '' then
  if redis.call('GET', KEYS[2]) ~= ARGV[2] then return unstaged({'LOCKED'}) end
end
if ARGV[1] == '-' then
  if cur[1] then return unstaged({'CONFLICT', cur[1]}) end
elseif ARGV[1] ~= '*' then
  if cur[1] ~= ARGV[1] then return unstaged({'CONFLICT', cur[1] or ''}) end
end
if ARGV[11] == '1' and cur[6] and cur[6] ~= '' then return unstaged({'DESCRIBED', cur[6]}) end
local n = tonumber(ARGV[4])
local prefix = ARGV[6]
for i = 0, n - 1 do
  if redis.call('EXISTS', prefix .. ARGV[3] .. ':' .. i) == 0 then return {'MISSING', i} end
end
-- The staged pointer is written by one HSET: its version there, it is whole.
if staged and redis.call('HGET', staged, 'v') ~= ARGV[3] then return unstaged({'MISSING', -1}) end
local reserve = tonumber(ARGV[7])
local single = #KEYS > 2
local held = 0
local cfg
if single then
  if ARGV[23] ~= '' then held = tonumber(redis.call('HGET', KEYS[7], ARGV[23]) or '0') end
  reserve = reserve - held
  cfg = redis.call('HMGET', KEYS[4], 'capacity', 'recount')
  if reserve > 0 and cfg[1] then
    local cap = tonumber(cfg[1])
    local used = tonumber(redis.call('GET', KEYS[3]) or '0')
    if used + reserve > cap then
      local _, freed = reap(KEYS[7], KEYS[8], KEYS[3])
      if freed > 0 then
        -- The write's own reservation may have been among them.
        reserve = reserve + held
        held = 0
        if ARGV[23] ~= '' then held = tonumber(redis.call('HGET', KEYS[7], ARGV[23]) or '0') end
        reserve = reserve - held
        used = tonumber(redis.call('GET', KEYS[3]) or '0')
      end
      if used + reserve > cap then return unstaged({'FULL', used, cap, tonumber(cur[3] or '0')}) end
    end
  end
end
for i = 0, n - 1 do redis.call('PERSIST', prefix .. ARGV[3] .. ':' .. i) end
local old_ss = 0
if cur[1] then
  old_ss = tonumber(cur[3] or '0')
  local old_n = tonumber(cur[2] or '0')
  retire(prefix .. cur[1] .. ':', old_n, ARGV[12] .. cur[1], tonumber(ARGV[5]), cur[5])
  -- The new fields overwrite the old ones in place (cheaper than a new
  -- hash); only an old inline payload can be left over.
  if old_n == 0 and n > 0 then redis.call('HDEL', KEYS[1], 'data') end
end
local seq = tonumber(cur[4] or '0') + 1
if staged then
  -- The staged pointer has every field but these; it takes the old one's
  -- place whole, and its pending expiry goes.
  redis.call('RENAME', staged, KEYS[1])
  redis.call('PERSIST', KEYS[1])
  redis.call('HSET', KEYS[1], 'seq', seq, 'pv', cur[1] or '')
else
  local a = ARGV
  local fields = {'seq', seq, 'ns', a[10], 'name', a[8], 'v', a[3], 'len', a[14], 'n', a[15],
    'cs', a[16], 'x', a[17], 'c', a[18], 'desc', a[19], 't', a[20], 'ss', a[21], 'pv', cur[1] or ''}
  if a[24] then
    fields[#fields + 1] = 'data'
    fields[#fields + 1] = a[24]
  end
  redis.call('HSET', KEYS[1], unpack(fields))
end
if single then
  if reserve ~= old_ss then redis.call('INCRBY', KEYS[3], reserve - old_ss) end
  if held > 0 then
    redis.call('HDEL', KEYS[7], ARGV[23])
    redis.call('ZREM', KEYS[8], ARGV[23])
  end
  if cfg[2] then redis.call('HINCRBY', KEYS[4], 'moves', 1) end
  redis.call('HSET', KEYS[5], ARGV[8], ARGV[9])
  redis.call('SADD', KEYS[6], ARGV[10])
end
return {'OK', seq, old_ss, cur[1] or ''}
"#
);

/// Deletes a name's pointer and its chunks (`retire!`).
///
/// `KEYS`: pointer, lock, the delete's record (`Keys::deleted`), and on a
/// single server the usage counter, the catalog and the settings. `ARGV`: lock token,
/// least grace in ms, chunk key prefix, name, expected version (`*` any),
/// the call's token, the prefix of the keys of fetches in progress, the
/// namespace.
///
/// A call is run again when its connection closed under it (conn.rs,
/// `Pool::run`): the record, kept a minute, makes the second run answer
/// what the first did instead of `NONE`.
///
/// A pointer of another name whose key is the same is left as it is.
///
/// Returns `{OK, old stored size}`, `{NONE}`, `{LOCKED}`, `{CONFLICT,
/// current}` or `{COLLISION, namespace, name}` (the other name's).
const DELETE: &str = concat!(
    retire!(),
    accounting!(),
    r#"
-- First: this very call ran already (whatever happened to the name since).
local done = redis.call('GET', KEYS[3])
local prefix = ARGV[6] .. ':'
if done and string.sub(done, 1, #prefix) == prefix then
  return {'OK', tonumber(string.match(string.sub(done, #prefix + 1), '^%d+'))}
end
local cur = redis.call('HMGET', KEYS[1], 'v', 'n', 'ss', 'len', 'ns', 'name')
-- Another name whose key is the same: it is not this name's to delete.
if cur[1] and cur[5] and cur[6] and (cur[5] ~= ARGV[8] or cur[6] ~= ARGV[4]) then
  return {'COLLISION', cur[5] or '', cur[6] or ''}
end
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {'LOCKED'} end
end
if not cur[1] then
  if #KEYS > 3 then redis.call('HDEL', KEYS[5], ARGV[4]) end
  return {'NONE'}
end
if ARGV[5] ~= '*' and cur[1] ~= ARGV[5] then return {'CONFLICT', cur[1]} end
-- A corrupt pointer's fields are read as 0: it is deleted all the same.
retire(ARGV[3] .. cur[1] .. ':', tonumber(cur[2]) or 0, ARGV[7] .. cur[1], tonumber(ARGV[2]), tonumber(cur[4]) or 0)
redis.call('DEL', KEYS[1])
local old_ss = tonumber(cur[3]) or 0
if #KEYS > 3 then
  if old_ss > 0 then
    redis.call('DECRBY', KEYS[4], old_ss)
    moved(KEYS[6])
  end
  redis.call('HDEL', KEYS[5], ARGV[4])
end
redis.call('SET', KEYS[3], ARGV[6] .. ':' .. old_ss .. ':' .. cur[1], 'PX', 60000)
return {'OK', old_ss}
"#
);

/// Changes the usage count: a write's reservation, or a plain change; on
/// a cluster, also the changes in flight.
///
/// `KEYS`: usage counter, settings, the call's mark (`Keys::counted`), the
/// writes' reservations, their leases, the changes in flight (a sorted
/// set: id, server ms at which it lapses). `ARGV`: an id (`""`: a plain
/// change), bytes, the mode, the reservation's lease in ms, bytes counted
/// already outside the reservation (`settle`), the change's lease in ms.
/// The modes:
///
/// - `""`: with an id, sets what the write's reservation holds to the
///   bytes (0 ends it) and renews its lease; without, changes the count
///   by the bytes (negative gives back).
/// - `settle` (a cluster's write, before its publish): the object's size
///   is the bytes; it is counted (less what the reservation and the
///   bytes counted outside it hold), the reservation ends, and a change
///   opens under the id.
/// - `open` (a cluster's delete, before its script): a change opens.
/// - `done` (after either): the change closes, the reservation (if any)
///   is given back, and the count changes by the bytes (the replaced or
///   deleted object's size, negative; or what a failed write counted).
///
/// On a cluster a write's or delete's script runs on the object's slot,
/// away from the count, between `settle`/`open` and `done`: a recount
/// (`RECOUNT_END`) does not write its figure while a change is open.
///
/// A reservation is set to a total, not changed by a difference: one reaped
/// while its write lived (the write stalled past its lease) is counted again
/// whole by the write's next call, and never twice. A call that asks for
/// more room gives dead writes' reservations back first (`reap`). A call
/// run again when its connection closed under it (conn.rs, `Pool::run`)
/// finds its mark, kept a minute, and changes the count no more; calls
/// that are the same when run again (setting a reservation, opening a
/// change, closing one with nothing to give back) leave none. The server
/// time each call costs matters: a cluster's write makes two.
///
/// Returns `{1}`, or `{0, used, capacity, bytes asked for}` when it would
/// not fit.
pub(crate) const RESERVE: &str = concat!(
    accounting!(),
    r#"
local id, mode = ARGV[1], ARGV[3]
local delta = tonumber(ARGV[2])
if mode == 'open' then
  redis.call('ZADD', KEYS[6], clock() + tonumber(ARGV[6]), id)
  return {1}
end
-- A reservation set to a total, or a change closed with nothing to give
-- back, is the same when run again; any other call leaves a mark.
local marked = not ((id ~= '' and mode == '') or (mode == 'done' and delta == 0))
if marked and redis.call('EXISTS', KEYS[3]) == 1 then return {1} end
local held = 0
local function asked()
  local wanted = tonumber(ARGV[2])
  if id ~= '' then
    held = tonumber(redis.call('HGET', KEYS[4], id) or '0')
    wanted = wanted - held
  end
  if mode == 'settle' then wanted = wanted - tonumber(ARGV[5]) end
  return wanted
end
delta = asked()
local cfg = redis.call('HMGET', KEYS[2], 'capacity', 'recount')
local now
if delta > 0 then
  local freed
  now, freed = reap(KEYS[4], KEYS[5], KEYS[1])
  -- The call's own reservation may have been among them (its write
  -- stalled past its lease): it is counted again whole.
  if freed > 0 then delta = asked() end
  if cfg[1] then
    local used = tonumber(redis.call('GET', KEYS[1]) or '0')
    if used + delta > tonumber(cfg[1]) then return {0, used, tonumber(cfg[1]), delta} end
  end
end
if marked then redis.call('SET', KEYS[3], '1', 'PX', 60000) end
if id ~= '' then
  if mode == '' and ARGV[2] ~= '0' then
    redis.call('HSET', KEYS[4], id, ARGV[2])
    redis.call('ZADD', KEYS[5], (now or clock()) + tonumber(ARGV[4]), id)
  elseif held > 0 then
    redis.call('HDEL', KEYS[4], id)
    redis.call('ZREM', KEYS[5], id)
  end
  if mode == 'settle' then
    redis.call('ZADD', KEYS[6], (now or clock()) + tonumber(ARGV[6]), id)
  elseif mode == 'done' then
    redis.call('ZREM', KEYS[6], id)
  end
end
-- A reservation set or ended changes the count and what writes hold
-- together, which a recount adds up alike; anything else is a change.
if cfg[2] and (id == '' or mode ~= '') then redis.call('HINCRBY', KEYS[2], 'moves', 1) end
if delta ~= 0 and redis.call('INCRBY', KEYS[1], delta) < 0 then redis.call('SET', KEYS[1], 0) end
return {1}
"#
);

/// Gives back the reservations of writes that died (`reap`), and drops the
/// changes in flight that lapsed (`RESERVE`). `KEYS`: the writes'
/// reservations, their leases, the usage counter, the changes in flight.
/// Returns the bytes given back.
const REAP: &str = concat!(
    accounting!(),
    r#"
local now, freed = reap(KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
return freed
"#
);

/// Starts a recount (`fsck`): from now on every change of the count is
/// counted (`moved`). `KEYS`: the settings, the recounts in progress (a
/// sorted set: token, server ms at which it lapses). `ARGV`: the
/// recount's token, its lease in ms. Recounts that lapsed (an `fsck` that
/// died) are dropped. Returns the changes counted so far, which
/// `RECOUNT_END` compares. Safe to run twice: the changes are counted from
/// the later run, before the recount looks at anything.
const RECOUNT_BEGIN: &str = concat!(
    accounting!(),
    r#"
local now = clock()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[1], 'recount', 1)
return tonumber(redis.call('HGET', KEYS[1], 'moves') or '0')
"#
);

/// Ends a recount: when nothing changed the count since `RECOUNT_BEGIN`
/// (and the recount did not lapse), it becomes the bytes of the objects
/// found plus what the writes in progress hold, after dead writes'
/// reservations are given back, and no change is in flight (a cluster's,
/// `RESERVE`). `KEYS`: the usage counter, the settings, the writes'
/// reservations, their leases, the recounts in progress, the call's mark
/// (`Keys::counted`), the changes in flight. `ARGV`: the bytes of the objects found,
/// the changes `RECOUNT_BEGIN` returned, the recount's token. The last
/// recount to end stops the counting of changes. Returns `{1, count}`, or
/// `{0, count}` when the count was left as it is; a run again (its
/// connection closed under it) finds its mark and answers the same.
const RECOUNT_END: &str = concat!(
    accounting!(),
    r#"
local done = redis.call('GET', KEYS[6])
if done then return {tonumber(done), tonumber(redis.call('GET', KEYS[1]) or '0')} end
local now = reap(KEYS[3], KEYS[4], KEYS[1])
local mine = redis.call('ZSCORE', KEYS[5], ARGV[3])
redis.call('ZREM', KEYS[5], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local moves = tonumber(redis.call('HGET', KEYS[2], 'moves') or '0')
if redis.call('ZCARD', KEYS[5]) == 0 then redis.call('HDEL', KEYS[2], 'recount', 'moves') end
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now)
local rebuilt = 0
if mine and moves == tonumber(ARGV[2]) and redis.call('ZCARD', KEYS[7]) == 0 then
  local total = tonumber(ARGV[1])
  for _, bytes in ipairs(redis.call('HVALS', KEYS[3])) do total = total + tonumber(bytes) end
  redis.call('SET', KEYS[1], total)
  rebuilt = 1
end
redis.call('SET', KEYS[6], rebuilt, 'PX', 60000)
return {rebuilt, tonumber(redis.call('GET', KEYS[1]) or '0')}
"#
);

/// Releases a lock held with the token `ARGV[1]`. Returns 1 if it was held.
const UNLOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Renews a lock held with the token `ARGV[1]` for `ARGV[2]` ms. Returns 1
/// if it was still held.
const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

macro_rules! script {
    ($name:ident, $source:ident) => {
        pub(crate) fn $name() -> &'static Script {
            static SCRIPT: OnceLock<Script> = OnceLock::new();
            SCRIPT.get_or_init(|| Script::new($source))
        }
    };
}

script!(publish, PUBLISH);
script!(delete, DELETE);
script!(reserve, RESERVE);
script!(reap, REAP);
script!(recount_begin, RECOUNT_BEGIN);
script!(recount_end, RECOUNT_END);
script!(unlock, UNLOCK);
script!(renew, RENEW);
