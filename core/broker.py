"""kombu's Redis transport, with a channel that closes cleanly once Redis is gone.

``CELERY_BROKER_TRANSPORT`` names :class:`Transport` for ``redis://`` and
``rediss://`` broker URLs. It is kombu's own transport except for
:meth:`Channel.close`; see docs/operations.md, "Broker outages", for the kombu
defect it works around and when to remove it.
"""

from __future__ import annotations

from queue import Empty

from kombu.transport import redis


class Channel(redis.Channel):
    def close(self) -> None:
        # kombu's close() first reads the reply of a BRPOP still in flight. With
        # Redis gone that read raises a connection error and close() stops
        # half-way: the channel stays open. Celery's consumer then closes the
        # connection a second time, after kombu has detached the transport
        # from it, and the retried close() restores the unacknowledged
        # messages through a Redis client it can no longer build
        # (AttributeError in _connparams): the worker exits. A connection
        # error here only means there is no reply to read; the rest of close()
        # still has to run while the transport is attached.
        if self._in_poll:
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors:
                pass  # _brpop_read() dropped the broken connection already
        super().close()


class Transport(redis.Transport):
    Channel = Channel
