"""The broker's data model in Redis: keys, the two Lua scripts, the connections.

Why a module of its own: what lives in Redis, and how it is written, is the
contract between workers (possibly of different builds, always of one run),
so it is spelled out in one place (servers/README.md, "Workers behind
Redis", says the same in prose):

- ``duplexbench:epoch`` (string): the epoch of everything below. Created once
  with ``SET NX`` by the first worker; when it is gone the data is gone
  (FLUSHALL, a Redis restart: the suite's Redis saves nothing) and the next
  worker to look creates a new one.
- ``duplexbench:t:{T}:seq`` (integer): topic T's last seq (``INCR``).
- ``duplexbench:t:{T}:log`` (stream): topic T's retention. Entry ID ``0-<seq>``
  (so the stream's order is the topic's order and seq is dense from 1), fields
  ``e`` = the encoded envelope (pad included), ``m`` = the publishing worker's
  CLOCK_MONOTONIC ns when it sent the publish, ``a`` = Redis's ``TIME`` when
  the script ran (µs since the epoch: the moment Redis accepted the message),
  both for the latency split (servers/broker_metrics.py); ``MAXLEN`` =
  ``--retention`` (exact, not ``~``: the retention window).
- ``duplexbench:topics`` (set): topic names ever published, bounded by
  ``--max-topics`` (publishing to one more is refused: 503).

A publish is one script (:data:`PUBLISH_LUA`): check the epoch, INCR, XADD with
the envelope completed by the seq; atomic, so seq order = stream order across
workers. A worker reads a topic's retained tail (or what its cache lacks)
with :data:`SYNC_LUA` (epoch + entries after a seq, one round trip) and
follows live ones with ``XREAD BLOCK`` on one connection of its own.
Every Redis failure becomes :class:`~servers.retention.Unavailable` (503).
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .retention import Unavailable

__all__ = ["EPOCH_KEY", "PUBLISH_LUA", "SYNC_LUA", "TOPICS_KEY", "RedisStore", "log_key", "seq_key"]

EPOCH_KEY = "duplexbench:epoch"
TOPICS_KEY = "duplexbench:topics"
_LOG_PREFIX, _LOG_SUFFIX = "duplexbench:t:", ":log"


def seq_key(topic: str) -> str:
    return f"duplexbench:t:{topic}:seq"


def log_key(topic: str) -> str:
    return f"{_LOG_PREFIX}{topic}{_LOG_SUFFIX}"


#: KEYS: epoch, seq, log, topics. ARGV: epoch, maxlen, envelope after '{"seq":N', sent ns,
#: topic, max topics. Returns {seq, ""}; {0, current epoch or ""}: the epoch is not ours
#: (the data we numbered against is gone); {-1, ""}: too many topics.
PUBLISH_LUA = """
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then return {0, epoch or ''} end
if redis.call('EXISTS', KEYS[2]) == 0 then
  if redis.call('SADD', KEYS[4], ARGV[5]) == 1 and
     redis.call('SCARD', KEYS[4]) > tonumber(ARGV[6]) then
    redis.call('SREM', KEYS[4], ARGV[5])
    return {-1, ''}
  end
end
local seq = string.format('%d', redis.call('INCR', KEYS[2]))
local now = redis.call('TIME')
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[2], '0-' .. seq,
           'e', '{"seq":' .. seq .. ARGV[3], 'm', ARGV[4],
           'a', now[1] .. string.format('%06d', tonumber(now[2])))
return {tonumber(seq), ''}
"""

#: KEYS: epoch, log. ARGV: after seq (exclusive), count. Returns {epoch or "", flat list
#: seq-id, envelope, sent ns, accepted us, seq-id, ...} (flat: no field maps to build).
SYNC_LUA = """
local epoch = redis.call('GET', KEYS[1])
local entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[1], '+', 'COUNT', ARGV[2])
local out = {}
for _, entry in ipairs(entries) do
  local fields = entry[2]
  out[#out + 1] = entry[1]
  out[#out + 1] = fields[2]
  out[#out + 1] = fields[4]
  out[#out + 1] = fields[6]
end
return {epoch or '', out}
"""

#: KEYS: epoch. ARGV: a new epoch, used only when none exists. Returns the epoch.
_EPOCH_LUA = "redis.call('SET', KEYS[1], ARGV[1], 'NX') return redis.call('GET', KEYS[1])"

#: (seq, envelope bytes, publishing worker's monotonic ns at send, Redis's TIME in µs)
Entry = tuple[int, bytes, int, int]


def _seq(entry_id: bytes) -> int:
    return int(entry_id[2:])  # b"0-<seq>"


class RedisStore:
    """A worker's connections: a pool for commands and one connection for XREAD BLOCK."""

    def __init__(self, url: str, pool_size: int = 64, timeout_s: float = 5.0) -> None:
        self.url = url
        self._pool_size = pool_size
        self._timeout_s = timeout_s
        self._cmd: aioredis.Redis | None = None
        self._reader: aioredis.Redis | None = None
        self._reader_id: int | None = None
        self._publish = self._sync = self._epoch = None

    async def connect(self) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=self._pool_size, timeout=self._timeout_s,
            socket_timeout=self._timeout_s, socket_connect_timeout=self._timeout_s)
        self._cmd = aioredis.Redis(connection_pool=pool)
        # The reader blocks up to its BLOCK time: its socket timeout must be longer.
        self._reader = aioredis.Redis.from_url(
            self.url, single_connection_client=True, socket_connect_timeout=self._timeout_s,
            socket_timeout=self._timeout_s + 30)
        self._publish = self._cmd.register_script(PUBLISH_LUA)
        self._sync = self._cmd.register_script(SYNC_LUA)
        self._epoch = self._cmd.register_script(_EPOCH_LUA)
        await self._call(self._cmd.ping())

    async def close(self) -> None:
        for client in (self._reader, self._cmd):
            if client is not None:
                try:
                    await client.aclose(close_connection_pool=True)
                except (RedisError, OSError):
                    pass
        self._cmd = self._reader = None

    async def _call(self, awaitable):
        try:
            return await awaitable
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise Unavailable(f"broker unavailable ({self.url}): {exc or type(exc).__name__}") from None

    # -- commands --

    async def init_epoch(self, candidate: str) -> str:
        """The data's epoch, created as ``candidate`` if there is none."""
        return (await self._call(self._epoch(keys=[EPOCH_KEY], args=[candidate]))).decode()

    async def current_epoch(self) -> str:
        """The data's epoch, "" when it is gone."""
        value = await self._call(self._cmd.get(EPOCH_KEY))
        return value.decode() if value else ""

    async def publish(self, epoch: str, topic: str, tail: bytes, maxlen: int,
                      max_topics: int, sent_ns: int) -> tuple[int, str]:
        """(seq, "") once Redis holds it; (0, epoch now) when ours is gone; (-1, "") full."""
        seq, current = await self._call(self._publish(
            keys=[EPOCH_KEY, seq_key(topic), log_key(topic), TOPICS_KEY],
            args=[epoch, maxlen, tail, sent_ns, topic, max_topics]))
        return int(seq), current.decode() if isinstance(current, bytes) else str(current)

    async def sync(self, topic: str, after: int, count: int) -> tuple[str, list[Entry]]:
        """(epoch or "", up to ``count`` entries with seq > ``after``), atomically."""
        epoch, flat = await self._call(self._sync(keys=[EPOCH_KEY, log_key(topic)],
                                                  args=[after, count]))
        entries = [(_seq(flat[i]), flat[i + 1], int(flat[i + 2]), int(flat[i + 3]))
                   for i in range(0, len(flat), 4)]
        return epoch.decode(), entries

    # -- the reader connection --

    async def reader_ready(self) -> None:
        """Learn the reader connection's client id (once per connection)."""
        if self._reader_id is None:
            self._reader_id = await self._call(self._reader.client_id())

    async def read(self, after: dict[str, int], count: int,
                   block_ms: int) -> list[tuple[str, list[Entry]]]:
        """XREAD BLOCK: [(topic, entries)] of the topics' logs after each seq; [] on timeout
        or :meth:`unblock_reader`."""
        streams = {log_key(topic): f"0-{seq}" for topic, seq in after.items()}
        try:
            reply = await self._reader.xread(streams, count=count, block=block_ms)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._reader_id = None  # a new connection has a new id
            raise Unavailable(f"broker unavailable ({self.url}): {exc or type(exc).__name__}") from None
        out = []
        for key, entries in reply or ():
            topic = key.decode()[len(_LOG_PREFIX):-len(_LOG_SUFFIX)]
            out.append((topic, [(_seq(i), f[b"e"], int(f[b"m"]), int(f[b"a"]))
                                for i, f in entries]))
        return out

    async def unblock_reader(self) -> bool:
        """End the reader's blocked XREAD now (it re-issues with the new topic set);
        False when it was not blocked (yet)."""
        if self._reader_id is None:
            return False
        return bool(await self._call(self._cmd.client_unblock(self._reader_id)))
