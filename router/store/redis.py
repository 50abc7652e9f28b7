"""The decision log on a Redis stream: group commit, trimming, and a spool for outages.

Every ``append`` hands its event to a group commit (``common.storage.group_commit``) and
awaits its own future: when no write is in flight and nothing is queued, the
appending request writes its own event at once; otherwise the events queued while
a write was in flight go together in the next round trip (up to ``MAX_BATCH``), so
N concurrent requests cost about one round trip, not N. One write is in flight at a
time, so the stream keeps the order of acknowledgement. Writes go over one pipelined
connection of our own (``router.store._resp``: ~30 µs less per round trip than
redis-py's client, ``bench/_resp_cost.py``); reads, pings, TLS and URLs it does
not speak use redis-py.

Each batch goes through one Lua script call that, per event, sets
``bandit:decisions:seen:<event_id>`` with ``SET NX EX`` and ``XADD``s (``MAXLEN ~``)
only when that set succeeded: an event id reaches the stream once, whether it is
retried, replayed after a crash, or was written by a batch whose reply was lost in a
timeout. The script is the default on the live path too because it costs about what
a plain pipeline costs (``bench/_store_cost.py``). ``dedupe_live=False`` sends a
plain pipeline of XADDs instead and keeps the script for replays, at the price of
doubling a batch whose reply was lost.

When a write fails (connection refused, a 1 s timeout, any Redis error) the batch goes
to the local spool and ``append`` still succeeds; from then on new events go straight
to the spool, in order, without waiting on a dead Redis. A recovery task PINGs every
``PROBE_INTERVAL_S``; once Redis answers it replays the spool oldest first through the
dedupe script, and only when the spool is empty (checked under the spool lock, so no
event can slip in behind it) do appends go back to Redis: the stream keeps the order
the events were acknowledged in. A spool left by a previous run is replayed on start.
When the spool is full, ``append`` raises ``ServiceUnavailable`` and records nothing,
and ``status()`` says the store is not accepting until the replay has made room.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from redis.exceptions import RedisError, ResponseError

from common import redis_errors
from common.storage.backends import describe, redis_client
from common.storage.group_commit import GroupCommit
from common.storage.keys import DECISIONS_STREAM, decision_seen_key
from common.storage.streams import read_after
from common.tasks import stop_tasks
from router.errors import ServiceUnavailable
from router.store import _resp
from router.store.base import DEDUPE_XADD, StoreStatus, encode_event, event_id_of
from router.store.spool import Spool, parse_spooled

logger = logging.getLogger(__name__)

MAX_BATCH = 512
PROBE_INTERVAL_S = 0.5
CONNECT_TIMEOUT_S = 0.5
OP_TIMEOUT_S = 1.0
CLOSE_STEP_S = 3.0  # close() waits at most this long for the replay task to stop
DEFAULT_SPOOL_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_STREAM_MAXLEN = 1_000_000
# A seen-marker must outlive the outage after which its event may be replayed: an
# event whose batch Redis wrote but whose reply was lost is spooled and replayed when
# Redis is back, and only its marker stops it from landing twice. Each marker costs
# Redis ~160 bytes (measured) for this long: ~58 MB at 100 events/s for an hour.
DEFAULT_SEEN_TTL_S = 3600

_T = TypeVar("_T")
_Entry = tuple[str, str, "asyncio.Future[None]"]  # event id, JSON line, the caller's future
_FULL = "decision log unavailable: spool full"


class RedisStore:
    """Decision events on the ``bandit:decisions`` stream of the Redis at ``url``."""

    def __init__(self, url: str, *, spool_path: str | os.PathLike[str],
                 spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
                 stream_maxlen: int = DEFAULT_STREAM_MAXLEN,
                 seen_ttl_s: int = DEFAULT_SEEN_TTL_S, dedupe_live: bool = True) -> None:
        self._where = describe(url)
        self._redis = redis_client(url, connect_timeout_s=CONNECT_TIMEOUT_S,
                                   timeout_s=OP_TIMEOUT_S, decode_responses=True)
        self._script = self._redis.register_script(DEDUPE_XADD)
        self._writer = (_resp.RespConnection(url, connect_timeout_s=CONNECT_TIMEOUT_S,
                                             reply_timeout_s=OP_TIMEOUT_S)
                        if _resp.supports(url) else None)
        self._spool = Spool(spool_path, spool_max_bytes)
        self._maxlen = stream_maxlen
        self._seen_ttl_s = seen_ttl_s
        self._dedupe_live = dedupe_live
        self._batches = GroupCommit(self._commit, _fail, max_batch=MAX_BATCH,
                                    name="decision-flusher")
        self._spool_lock = asyncio.Lock()
        # One thread for every spool file operation: they run in order, and close()
        # can wait for one still running after its task was cancelled.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._recovery: asyncio.Task[None] | None = None
        self._spooling = False
        self._reachable = False
        self._detail = "not started"
        self._refused_bytes = 0  # the spool line that did not fit last time; 0: none refused
        self._spool_failure: str | None = None  # the spool's last write error, if it failed
        self.flushes = 0
        """Round trips that wrote live events to Redis (one per batch)."""
        self.spool_writes = 0
        """Batches written (and fsynced) to the spool."""
        self.replayed = 0
        """Spooled events sent to Redis by replays (duplicates included)."""
        self.duplicates = 0
        """Events the dedupe script found already on the stream and skipped."""

    async def start(self) -> None:
        """Open the spool; replay what a previous run left; spool if Redis is down."""
        try:
            await self._on_io(self._spool.open)
        except BaseException:
            self._io.shutdown(wait=False)
            raise
        if self._spool.pending:
            self._spooling = True
            self._detail = f"replaying {self._spool.pending} events left in {self._spool.path}"
            self._start_recovery(first_delay=0.0)
        else:
            try:
                await self._redis.ping()
            except (RedisError, OSError) as exc:
                redis_errors.count("decision_log")
                self._enter_outage(exc)
            else:
                self._reachable = True
                self._detail = f"{self._where}: ok"
        self._batches.start()

    async def close(self) -> None:
        """Write what is queued (to Redis or the spool), stop the tasks, close everything."""
        if not await self._batches.close():
            return
        if self._recovery is not None:
            await stop_tasks({self._recovery}, CLOSE_STEP_S)
        await self._on_io(self._spool.close)
        self._io.shutdown(wait=True)
        if self._writer is not None:
            await self._writer.close()
        await self._redis.aclose()

    async def append(self, event: dict[str, Any]) -> None:
        """Record ``event``; on return it is on the stream or fsynced in the spool."""
        if not self._batches.running:
            raise RuntimeError("the decision store is not running")
        entry: _Entry = (event_id_of(event), encode_event(event),
                         asyncio.get_running_loop().create_future())
        await self._batches.submit(entry)
        await entry[2]

    def status(self) -> StoreStatus:
        """Redis's last known reachability, whether appends spool, how many wait, and
        whether an append now would be recorded."""
        refusal = self._refusal()
        return StoreStatus(reachable=self._reachable, spooling=self._spooling,
                           spooled=self._spool.pending, detail=refusal or self._detail,
                           accepting=refusal is None)

    def _refusal(self) -> str | None:
        """Why an append now would get a 503, or None when it would be recorded."""
        if not self._spooling:
            return None  # a failed write would go to the spool
        if self._spool_failure is not None:
            return f"decision log unavailable: {self._spool_failure}"
        spool = self._spool
        if self._refused_bytes and spool.max_bytes - spool.size < self._refused_bytes:
            return (f"decision log unavailable: spool {spool.path} full ({spool.size} of "
                    f"{spool.max_bytes} bytes) while {self._where} is unreachable or "
                    "refuses writes")
        return None

    async def read_decisions(
        self, count: int, after: str = "0"
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``count`` (stream id, event) after ``after``, oldest first (XRANGE)."""
        entries = await read_after(self._redis, DECISIONS_STREAM, after, count)
        return [(stream_id, json.loads(fields["event"])) for stream_id, fields in entries]

    async def _commit(self, batch: list[_Entry]) -> None:
        """Write ``batch`` to Redis, or to the spool while spooling or when Redis fails;
        settle every caller in it."""
        try:
            await self._write_or_spool(batch)
        except ServiceUnavailable as exc:  # the spool could not be written
            logger.error("%s", exc.message)
            _settle(batch, 0, exc)

    async def _write_or_spool(self, batch: list[_Entry]) -> None:
        lines = [line for _, line, _ in batch]
        async with self._spool_lock:
            if self._spooling:
                _settle(batch, await self._to_spool(lines), ServiceUnavailable(_FULL))
                return
        try:
            await self._write([event_id for event_id, _, _ in batch], lines,
                              dedupe=self._dedupe_live)
        except (RedisError, OSError) as exc:
            redis_errors.count("decision_log")
            async with self._spool_lock:
                self._enter_outage(exc)
                _settle(batch, await self._to_spool(lines), ServiceUnavailable(_FULL))
            return
        self.flushes += 1
        self._reachable = True
        _settle(batch, len(batch), ServiceUnavailable(_FULL))

    async def _write(self, event_ids: Sequence[str], lines: Sequence[str], *,
                     dedupe: bool) -> None:
        """One round trip: the dedupe script over the batch, or a pipeline of XADDs."""
        if self._writer is not None:
            await self._write_resp(self._writer, event_ids, lines, dedupe=dedupe)
            return
        if dedupe:
            keys = [DECISIONS_STREAM, *(decision_seen_key(event_id) for event_id in event_ids)]
            added = await self._script(keys=keys, args=[self._maxlen, self._seen_ttl_s, *lines])
            self.duplicates += len(lines) - int(added)
            return
        pipe = self._redis.pipeline(transaction=False)
        for line in lines:
            pipe.xadd(DECISIONS_STREAM, {"event": line}, maxlen=self._maxlen, approximate=True)
        await pipe.execute()

    async def _write_resp(self, writer: _resp.RespConnection, event_ids: Sequence[str],
                          lines: Sequence[str], *, dedupe: bool) -> None:
        """``_write`` over our own connection; a Redis that lost its script cache
        (restarted, SCRIPT FLUSH) gets the script itself once (EVAL caches it)."""
        if not dedupe:
            await writer.pipeline([("XADD", DECISIONS_STREAM, "MAXLEN", "~", self._maxlen, "*",
                                    "event", line) for line in lines])
            return
        keys = [decision_seen_key(event_id) for event_id in event_ids]
        args: tuple[_resp.Arg, ...] = (len(keys) + 1, DECISIONS_STREAM, *keys, self._maxlen,
                                       self._seen_ttl_s, *lines)
        try:
            added = await writer.call("EVALSHA", self._script.sha, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            added = await writer.call("EVAL", DEDUPE_XADD, *args)
        self.duplicates += len(lines) - int(added)

    async def _to_spool(self, lines: list[str]) -> int:
        """Append ``lines`` to the spool (caller holds the lock); how many fit."""
        try:
            accepted = await self._on_io(self._spool.append, lines)
        except OSError as exc:
            self._spool_failure = f"spool write failed: {exc}"
            raise ServiceUnavailable(f"decision log unavailable: {self._spool_failure}") \
                from exc
        self._spool_failure = None
        self.spool_writes += 1
        self._refused_bytes = 0 if accepted == len(lines) else len(lines[accepted].encode()) + 1
        if accepted < len(lines):
            logger.error("decision spool %s is full (%d bytes)", self._spool.path,
                         self._spool.max_bytes)
        return accepted

    def _enter_outage(self, exc: BaseException) -> None:
        """Switch appends to the spool and start probing (caller holds the lock, or starts)."""
        self._reachable = False
        self._detail = f"{self._where} unreachable ({exc}); spooling to {self._spool.path}"
        if not self._spooling:
            logger.warning("%s", self._detail)
            self._spooling = True
            self._start_recovery(first_delay=PROBE_INTERVAL_S)

    def _start_recovery(self, first_delay: float) -> None:
        self._recovery = asyncio.create_task(self._recover(first_delay), name="spool-replay")

    async def _recover(self, delay: float) -> None:
        """PING until Redis answers, then replay the spool until it is empty."""
        while True:
            await asyncio.sleep(delay)
            delay = PROBE_INTERVAL_S
            try:
                await self._redis.ping()
                self._reachable = True
                self._detail = f"{self._where} back; replaying {self._spool.pending} events"
                await self._replay()
            except (RedisError, OSError) as exc:
                redis_errors.count("decision_log")
                self._reachable = False
                self._detail = (f"{self._where} unreachable ({exc}); "
                                f"spooling to {self._spool.path}")
                continue
            except Exception as exc:  # keep trying: giving up would spool forever
                logger.exception("decision spool replay failed")
                self._detail = f"spool replay failed ({exc}); retrying"
                continue
            logger.warning("%s: spool replayed, appending to Redis again", self._where)
            return

    async def _replay(self) -> None:
        """Send the spool to Redis oldest first; stop spooling once it is empty."""
        while True:
            async with self._spool_lock:
                if not self._spool.pending:
                    self._spooling = False
                    self._detail = f"{self._where}: ok"
                    return
                lines = await self._on_io(self._spool.take)
            event_ids, events = parse_spooled(lines)
            for start in range(0, len(events), MAX_BATCH):
                chunk = slice(start, start + MAX_BATCH)
                await self._write(event_ids[chunk], events[chunk], dedupe=True)
                self.replayed += len(events[chunk])
            async with self._spool_lock:
                await self._on_io(self._spool.drop_taken)

    async def _on_io(self, func: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._io, func, *args)


def _fail(batch: Sequence[_Entry], exc: Exception) -> None:
    """A batch that failed unexpectedly: every caller gets a 503, nothing is acknowledged."""
    _settle(batch, 0, ServiceUnavailable(f"decision log unavailable: {exc}"))


def _settle(batch: Sequence[_Entry], accepted: int, error: BaseException) -> None:
    """Resolve the first ``accepted`` callers; fail the rest with ``error``."""
    for i, (_, _, future) in enumerate(batch):
        if future.done():  # the caller went away (cancelled); the event is still written
            continue
        if i < accepted:
            future.set_result(None)
        else:
            future.set_exception(error)
