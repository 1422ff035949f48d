"""The limits in Redis: one Lua script per decision, on Redis's clock.

Keys ``opsconsole:limits:{<limit key>}:<what>`` expire by themselves. One client
per process, with short timeouts: a Redis that does not answer costs a call
half a second, then the database decides (``decide``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

from core.redis import shared_redis
from smtp.delivery.server import SmtpServer

logger = logging.getLogger("smtp.outbox.limits")

# Redis answers within this, or the database decides.
REDIS_TIMEOUT = 0.5
# Redis failures are logged at most this often (seconds).
LOG_EVERY = 30.0

T = TypeVar("T")

# KEYS: the message log, the pause. ARGV: limit, window, token, provisional
# seconds, check (1: hold if over; 0: count only). Returns {admitted, wait,
# reason}.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local check = ARGV[5] == '1'
if check then
  local paused = tonumber(redis.call('HGET', KEYS[2], 'until') or '0')
  if paused > now then return {0, tostring(paused - now), 'paused'} end
end
local limit = tonumber(ARGV[1])
if limit == 0 then return {1, '0', ''} end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if check and count >= limit then
  local turn = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  return {0, tostring(tonumber(turn[2]) + window - now), 'rate'}
end
local provisional = tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], now + provisional, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil((window + provisional) * 1000) + 1000)
return {1, '0', ''}
"""

# KEYS: the message log. ARGV: token. The message reached the server by now.
SENT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
return 1
"""

# KEYS: the connection slots. ARGV: limit, lease, token, check. Returns 1 if
# the slot is taken.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[4] == '1' and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
return 1
"""

# KEYS: the connection slots. ARGV: lease, token.
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
return 1
"""

# KEYS: the pause. ARGV: first pause, longest pause. Returns the seconds left.
# Throttling replies during a pause (other sessions of the same moment) do not
# lengthen it; one soon after a pause ended doubles the next.
PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local base = tonumber(ARGV[1])
local longest = tonumber(ARGV[2])
local paused = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if paused > now then return tostring(paused - now) end
local streak = tonumber(redis.call('HGET', KEYS[1], 'streak') or '0')
local pause = math.min(longest, base * 2 ^ streak)
if paused > 0 and now - paused < 2 * pause then
  streak = streak + 1
else
  streak = 0
end
pause = math.min(longest, base * 2 ^ streak)
redis.call('HSET', KEYS[1], 'until', tostring(now + pause), 'streak', streak)
redis.call('PEXPIRE', KEYS[1], math.ceil((pause * 3 + longest) * 1000))
return tostring(pause)
"""


class Client:
    """One client per process (a forked worker makes its own), with timeouts."""

    def __init__(self) -> None:
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._logged_at = -math.inf

    def client(self) -> Any | None:
        client = shared_redis(REDIS_TIMEOUT)
        if client is not self._client:
            # Scripts are registered on a client: a new one (a fork) needs its own.
            self._client, self._scripts = client, {}
        return client

    def script(self, name: str, source: str) -> Any:
        client = self.client()
        if name not in self._scripts:
            self._scripts[name] = client.register_script(source)
        return self._scripts[name]

    def failed(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._logged_at > LOG_EVERY:
            self._logged_at = now
            logger.warning(
                "Redis is unreachable for delivery limits (%s); the database "
                "decides meanwhile.",
                type(error).__name__,
            )


client = Client()


def key(server: SmtpServer, what: str) -> str:
    # One hash tag per configuration: its keys stay on one Redis Cluster node.
    return f"opsconsole:limits:{{{server.limit_key}}}:{what}"


def decide(redis_call: Callable[[], T], database_call: Callable[[], T]) -> T:
    """In Redis if it is configured and answers, else in the database."""
    if settings.REDIS_URL:
        import redis

        try:
            return redis_call()
        except (redis.RedisError, OSError) as error:
            client.failed(error)
    return database_call()


def quietly(redis_call: Callable[[], object]) -> None:
    """Do this in Redis if it answers; if not, log it and go on."""
    import redis

    try:
        redis_call()
    except (redis.RedisError, OSError) as error:
        client.failed(error)
