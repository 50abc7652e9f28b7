"""The joiner on Redis: three Lua scripts make every input's effect exactly once.

Keys (``P`` = ``bandit:join:``; the names are in ``common.storage.keys``):

| key | holds |
| --- | --- |
| ``P offsets`` hash | ``decisions``, ``rewards``: the last stream id whose effect is applied |
| ``P p:{id}`` hash | the open window: ``d`` (decision JSON), ``e`` (experiment), ``mode``, |
| | ``min``, ``max``, ``default`` ("" = none); before the decision only ``k``: duplicates |
| ``P v:{id}`` list | reward values (text) in arrival order |
| ``P r:{id}`` set | reward ids seen (dedupe); kept with the done marker's TTL |
| ``P deadlines`` zset | event id -> when its window (or an orphan's fallback) closes |
| ``P done:{id}`` string | finished: the experiment ("" = rewards dropped as orphans), TTL ≥ 1 day |
| ``P counts:{experiment}`` hash | ``base.COUNTERS``; ``_unknown`` for inputs tied to none |
| ``P lease`` string | the active joiner's token (``lease.RedisLease``) |
| ``bandit:joined`` stream | output: ``event`` (decision JSON verbatim), ``reward``, ``default`` |
| | (``0``/``1``), ``rewards`` (how many aggregated), ``joined_at`` (unix s) |

Exactly once. Each decision and reward entry is applied by one script call that, in
one atomic step, (1) checks the joiner's lease token (a joiner that lost its lease
changes nothing), (2) skips the entry unless its stream id is newer than the stored
offset, (3) applies it (store, dedupe, count, maybe XADD the joined event and mark the
event done) and (4) advances the offset to its id. So a crash anywhere (between
scripts, between reading and calling, with replies lost) leaves Redis either before or
after each entry, never half way, and reprocessing from the stored offset re-applies
nothing: no event is joined twice, none is lost, and even the counters are exact. The
deadline script is idempotent on its own: it acts only while the event is in the
deadline zset with a score ≤ now, and removes it in the same step. The done markers
make inputs that are redelivered later than the offsets can see (replays of the
decision spool, webhook retries) harmless too. Entries are applied in stream order
because only one joiner holds the lease (two interleaving joiners could otherwise skip
an entry behind the other's offset). The decision JSON is emitted verbatim: Lua's
cjson would rewrite floats and empty arrays. Keys are built inside the scripts, so
this needs a single Redis (not Cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from common import redis_errors
from common.storage.backends import reply
from common.storage.keys import (
    ARCHIVE_OFFSET_KEY,
    DECISIONS_STREAM,
    JOIN_COUNTS_PREFIX,
    JOIN_DEADLINES,
    JOIN_LEASE,
    JOIN_OFFSETS,
    JOIN_PREFIX,
    JOINED_STREAM,
    REWARDS_STREAM,
)
from common.storage.streams import START, as_text, read_after, xrange_min
from reward_ingest.errors import LeaseLost
from reward_ingest.join_rules import (
    DecisionIn,
    JoinedEvent,
    JoinRule,
    marker_ttl,
    max_wait,
    parse_decision,
    parse_reward,
    reward_text,
)
from reward_ingest.lease import DEFAULT_TTL_S, RedisLease

from .base import BATCH, COUNTERS, JOINED_MAXLEN, UNKNOWN, Rules, rule_lookup

logger = logging.getLogger(__name__)

# The names the scripts use, from common.storage.keys (the Lua has no braces).
_PRELUDE = f"""
local P, UNKNOWN, JOINED = '{JOIN_PREFIX}', '{UNKNOWN}', '{JOINED_STREAM}'
local COUNTS, DEADLINES = '{JOIN_COUNTS_PREFIX}', '{JOIN_DEADLINES}'
local function newer(id, last)
  if not last then return true end
  local a, b = string.match(id, '^(%d+)-(%d+)$')
  local c, d = string.match(last, '^(%d+)-(%d+)$')
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  return a > c or (a == c and b > d)
end
local function count(exp, name, by)
  if by ~= 0 then redis.call('HINCRBY', COUNTS .. exp, name, by) end
end
local function mark_done(id, exp, ttl)
  redis.call('SET', P .. 'done:' .. id, exp, 'PX', ttl)
  redis.call('DEL', P .. 'p:' .. id, P .. 'v:' .. id)
  redis.call('PEXPIRE', P .. 'r:' .. id, ttl)
  redis.call('ZREM', DEADLINES, id)
end
local function finish(id, exp, json, reward, default, n, now, ttl, maxlen)
  redis.call('XADD', JOINED, 'MAXLEN', '~', maxlen, '*', 'event', json, 'reward', reward,
             'default', default and '1' or '0', 'rewards', n, 'joined_at', now)
  count(exp, 'joined', 1)
  if default then count(exp, 'default_rewards', 1) end
  mark_done(id, exp, ttl)
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
"""

# KEYS: lease, offsets. ARGV: token, stream id, event id, experiment, JSON, mode ('' unknown
# experiment, '!' malformed), min, max, default ('' none), deadline, now, ttl ms, maxlen.
# Returns -1 fenced, 0 already applied, 1 applied, 2 applied and joined.
ON_DECISION = _PRELUDE + """
if not newer(ARGV[2], redis.call('HGET', KEYS[2], 'decisions')) then return 0 end
redis.call('HSET', KEYS[2], 'decisions', ARGV[2])
local id, exp, json, mode = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if mode == '!' then count(UNKNOWN, 'malformed_decisions', 1) return 1 end
if mode == '' then count(exp, 'unknown_experiment', 1) return 1 end
local done, p = redis.call('GET', P .. 'done:' .. id), P .. 'p:' .. id
if (done and done ~= '') or redis.call('HEXISTS', p, 'e') == 1 then
  count(exp, 'duplicate_decisions', 1) return 1
end
if done then  -- its rewards were dropped as orphans: join it all the same
  redis.call('DEL', P .. 'done:' .. id)
  redis.call('PERSIST', P .. 'r:' .. id)
end
redis.call('HSET', p, 'd', json, 'e', exp, 'mode', mode, 'min', ARGV[7], 'max', ARGV[8],
           'default', ARGV[9])
count(exp, 'duplicate_rewards', tonumber(redis.call('HGET', p, 'k') or '0'))
redis.call('HDEL', p, 'k')
if mode == 'first' then
  local lo, hi, v = tonumber(ARGV[7]), tonumber(ARGV[8]), P .. 'v:' .. id
  local values = redis.call('LRANGE', v, 0, -1)
  for i, text in ipairs(values) do
    local x = tonumber(text)
    if x >= lo and x <= hi then
      count(exp, 'out_of_range', i - 1)
      count(exp, 'late_rewards', #values - i)
      finish(id, exp, json, text, false, 1, ARGV[11], ARGV[12], ARGV[13])
      return 2
    end
  end
  count(exp, 'out_of_range', #values)
  redis.call('DEL', v)
end
redis.call('ZADD', DEADLINES, ARGV[10], id)
return 1
"""

# KEYS: lease, offsets. ARGV: token, stream id, event id ('' malformed), reward id, value,
# fallback deadline, now, ttl ms, maxlen. Returns as ON_DECISION.
ON_REWARD = _PRELUDE + """
if not newer(ARGV[2], redis.call('HGET', KEYS[2], 'rewards')) then return 0 end
redis.call('HSET', KEYS[2], 'rewards', ARGV[2])
local id, rid, text = ARGV[3], ARGV[4], ARGV[5]
if id == '' then count(UNKNOWN, 'malformed_rewards', 1) return 1 end
local r, done = P .. 'r:' .. id, redis.call('GET', P .. 'done:' .. id)
if done then  -- remember late ids too: their redeliveries are duplicates, in any order
  local exp = done ~= '' and done or UNKNOWN
  if redis.call('SADD', r, rid) == 0 then count(exp, 'duplicate_rewards', 1)
  else count(exp, 'late_rewards', 1) end
  if redis.call('PTTL', r) == -1 then
    redis.call('PEXPIRE', r, math.max(1, redis.call('PTTL', P .. 'done:' .. id)))
  end
  return 1
end
local w = redis.call('HMGET', P .. 'p:' .. id, 'e', 'mode', 'min', 'max', 'd')
local exp = w[1]
if redis.call('SADD', r, rid) == 0 then
  if exp then count(exp, 'duplicate_rewards', 1)
  else redis.call('HINCRBY', P .. 'p:' .. id, 'k', 1) end  -- counted once its experiment is known
  return 1
end
if not exp then
  redis.call('RPUSH', P .. 'v:' .. id, text)
  redis.call('ZADD', DEADLINES, 'NX', ARGV[6], id)
  return 1
end
local x = tonumber(text)
if x < tonumber(w[3]) or x > tonumber(w[4]) then count(exp, 'out_of_range', 1) return 1 end
if w[2] == 'first' then
  finish(id, exp, w[5], text, false, 1, ARGV[7], ARGV[8], ARGV[9])
  return 2
end
redis.call('RPUSH', P .. 'v:' .. id, text)
return 1
"""

# KEYS: lease, offsets (unused). ARGV: token, event id, now, ttl ms, maxlen.
# Returns -1 fenced, 0 not due (or done already), 1 closed, 2 closed and joined.
ON_DEADLINE = _PRELUDE + """
local id, now = ARGV[2], ARGV[3]
local score = redis.call('ZSCORE', DEADLINES, id)
if not score or tonumber(score) > tonumber(now) then return 0 end
local values = redis.call('LRANGE', P .. 'v:' .. id, 0, -1)
local w = redis.call('HMGET', P .. 'p:' .. id, 'e', 'mode', 'min', 'max', 'default', 'd')
local exp = w[1]
if not exp then
  count(UNKNOWN, 'orphan_rewards', #values)
  count(UNKNOWN, 'duplicate_rewards', tonumber(redis.call('HGET', P .. 'p:' .. id, 'k') or '0'))
  mark_done(id, '', ARGV[4])
  return 1
end
local lo, hi, mode = tonumber(w[3]), tonumber(w[4]), w[2]
local kept, best, total = {}, nil, 0
for _, text in ipairs(values) do
  local x = tonumber(text)
  if x >= lo and x <= hi then
    kept[#kept + 1] = text
    total = total + x
    if best == nil or x > tonumber(best) then best = text end
  end
end
count(exp, 'out_of_range', #values - #kept)
if #kept > 0 then
  local reward = kept[1]
  if mode == 'max' then reward = best
  elseif mode == 'sum' then reward = string.format('%.17g', total)
  elseif mode == 'mean' then reward = string.format('%.17g', total / #kept) end
  finish(id, exp, w[6], reward, false, #kept, now, ARGV[4], ARGV[5])
  return 2
end
if w[5] ~= '' then
  finish(id, exp, w[6], w[5], true, 0, now, ARGV[4], ARGV[5])
  return 2
end
count(exp, 'dropped_no_reward', 1)
mark_done(id, exp, ARGV[4])
return 1
"""


class RedisJoiner:
    """Decisions ⋈ rewards on Redis; ``step(now)`` while holding the joiner's lease."""

    def __init__(self, client: aioredis.Redis, rules: Rules, *, batch: int = BATCH,
                 lease_ttl_s: float = DEFAULT_TTL_S, joined_maxlen: int = JOINED_MAXLEN,
                 fallback_wait_s: float | None = None, marker_ttl_s: float | None = None,
                 ) -> None:
        self._redis = client
        self._rule: Callable[[str], JoinRule | None] = rule_lookup(rules)
        mapping = rules if isinstance(rules, Mapping) else {}
        self._fallback = fallback_wait_s if fallback_wait_s is not None else max_wait(mapping)
        ttl = marker_ttl_s if marker_ttl_s is not None else marker_ttl(mapping)
        self._ttl_ms = str(max(1, round(ttl * 1000)))
        self._batch = batch
        self._maxlen = str(joined_maxlen)
        self.lease = RedisLease(client, JOIN_LEASE, lease_ttl_s)
        self._on_decision = client.register_script(ON_DECISION)
        self._on_reward = client.register_script(ON_REWARD)
        self._on_deadline = client.register_script(ON_DEADLINE)
        self.joined = 0
        """Events this instance joined (emitted); the Redis counters are the durable truth."""

    @classmethod
    def from_url(cls, url: str, rules: Rules, **options: Any) -> RedisJoiner:
        """A joiner with its own client (``decode_responses``: stream fields are text)."""
        return cls(aioredis.Redis.from_url(url, decode_responses=True), rules, **options)

    async def close(self) -> None:
        """Release the lease and the connection."""
        await self.lease.release()
        await self._redis.aclose()

    async def counts(self, experiments: Iterable[str] | None = None
                     ) -> dict[str, dict[str, int]]:
        """Experiment -> counter -> value, from ``bandit:join:counts:{experiment}``: one
        round trip for ``experiments``; None SCANs for every experiment (slow on a big
        keyspace: for tests and tools, not for a loop)."""
        if experiments is None:
            keys = [key async for key in self._redis.scan_iter(match=JOIN_COUNTS_PREFIX + "*",
                                                                count=1000)]
        else:
            keys = [JOIN_COUNTS_PREFIX + name for name in dict.fromkeys(experiments)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            replies = await pipe.execute()
        return {key.removeprefix(JOIN_COUNTS_PREFIX): {
                    name: int(values[name]) for name in COUNTERS if name in values}
                for key, values in zip(keys, replies, strict=True) if values}

    async def step(self, now: float) -> int:
        """One pass (lease held): new decisions, new rewards, then windows due at ``now``."""
        self.lease.check()
        token, now_text = self.lease.token, reward_text(now)
        decisions_at, rewards_at = await reply(
            self._redis.hmget(JOIN_OFFSETS, ["decisions", "rewards"]))
        decisions = await self._read(DECISIONS_STREAM, decisions_at)
        rewards = await self._read(REWARDS_STREAM, rewards_at)
        calls: list[tuple[Any, list[str]]] = [
            (self._on_decision, [token, stream_id, *self._decision_args(
                fields.get("event", ""), now_text)]) for stream_id, fields in decisions]
        calls += [(self._on_reward, [token, stream_id, *self._reward_args(
            fields.get("reward", ""), now_text)]) for stream_id, fields in rewards]
        await self._call(calls)
        due = await self._redis.zrangebyscore(JOIN_DEADLINES, "-inf", now_text, start=0,
                                              num=self._batch)
        await self._call([(self._on_deadline, [token, event_id, now_text, self._ttl_ms,
                                                self._maxlen]) for event_id in due])
        return len(decisions) + len(rewards) + len(due)

    async def _call(self, calls: list[tuple[Any, list[str]]]) -> None:
        """The scripts in one pipelined round trip, in order."""
        if not calls:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for script, args in calls:
                await script(keys=[JOIN_LEASE, JOIN_OFFSETS], args=args, client=pipe)
            self._tally(await pipe.execute())

    async def run(self, stop: asyncio.Event, clock: Callable[[], float] = time.time,
                  idle_s: float = 0.05) -> None:
        """Join until ``stop`` is set: take the lease, step, sleep ``idle_s`` when idle."""
        while not stop.is_set():
            if not await self.lease.acquire(stop):
                return
            try:
                async with self.lease.keep():
                    while not stop.is_set():
                        if not await self.step(clock()):
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(stop.wait(), idle_s)
            except LeaseLost:
                logger.warning("joiner lease lost; waiting to take it again")
            except (RedisError, OSError) as exc:
                redis_errors.count("joiner")
                logger.warning("joiner: redis error (%s); retrying", exc)
                await asyncio.sleep(idle_s)
        await self.lease.release()

    async def _read(self, stream: str, after: str | None) -> list[tuple[str, dict[str, str]]]:
        entries: list[tuple[str, dict[str, str]]] = await read_after(
            self._redis, stream, after, self._batch)
        return entries

    def _decision_args(self, text: str, now: str) -> list[str]:
        try:
            decision: DecisionIn | None = parse_decision(text)
        except ValueError:
            decision = None
        if decision is None:
            return ["", "", text, "!", "", "", "", "0", now, self._ttl_ms, self._maxlen]
        rule = self._rule(decision.experiment)
        if rule is None:
            return [decision.event_id, decision.experiment, "", "", "", "", "", "0", now,
                    self._ttl_ms, self._maxlen]
        default = "" if rule.default is None else reward_text(rule.default)
        return [decision.event_id, decision.experiment, text, rule.mode, reward_text(rule.min),
                reward_text(rule.max), default, reward_text(rule.deadline(decision.timestamp)),
                now, self._ttl_ms, self._maxlen]

    def _reward_args(self, text: str, now: str) -> list[str]:
        try:
            reward = parse_reward(text)
        except ValueError:
            return ["", "", "", "0", now, self._ttl_ms, self._maxlen]
        return [reward.event_id, reward.reward_id, reward.text,
                reward_text(reward.received_at + self._fallback), now, self._ttl_ms,
                self._maxlen]

    def _tally(self, replies: list[Any]) -> None:
        if any(reply == -1 for reply in replies):
            self.lease.lost = True
            raise LeaseLost(f"joiner lease {JOIN_LEASE} lost")
        self.joined += sum(1 for reply in replies if reply == 2)


# KEYS: stream. ARGV: XRANGE lower bound, cap. Counted in Redis: only the number travels.
COUNT_AFTER = """
return #redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
"""


class RedisJoinedLog:
    """The joined stream ``bandit:joined`` and the archive's offset in it
    (``bandit:archive:offset``), on any redis.asyncio client (text or bytes replies)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._count_after = client.register_script(COUNT_AFTER)

    async def count_after(self, after: str, cap: int) -> int:
        """How many entries come after the id ``after`` (at most ``cap``; O(cap) in Redis)."""
        return int(await self._count_after(keys=[JOINED_STREAM],
                                           args=[xrange_min(after), cap]))

    async def read_joined(self, count: int,
                          after: str = START) -> list[tuple[str, JoinedEvent | None]]:
        """Up to ``count`` entries after ``after``; ``None`` for an entry that does not
        parse (the learner skips and counts it, never wedging on it)."""
        entries = await read_after(self._redis, JOINED_STREAM, after, count)
        return [(as_text(stream_id), _parse(fields)) for stream_id, fields in entries]

    async def archived_offset(self) -> str:
        offset = await self._redis.get(ARCHIVE_OFFSET_KEY)
        return as_text(offset) if offset is not None else START

    async def save_archived_offset(self, offset: str) -> None:
        await self._redis.set(ARCHIVE_OFFSET_KEY, offset)


def _parse(fields: Mapping[str, str] | Mapping[bytes, bytes]) -> JoinedEvent | None:
    try:
        return JoinedEvent.from_fields(fields)
    except ValueError:
        return None


__all__ = ["RedisJoinedLog", "RedisJoiner"]
