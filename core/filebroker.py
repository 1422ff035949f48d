"""kombu's file-system transport (the development broker), with messages that
appear whole.

kombu writes a message straight into its final file name. A worker polling the
folder can move and read that file between its creation and its write, find it
empty, and stop ("Unrecoverable error: JSONDecodeError"); in development a
worker publishes too (a password reset's email, from the thread that hands new
emails to the broker) while its consumer polls. Here a message is written under
a name no queue reads (``.part`` after ``.msg``) and then renamed to its final
name, which is atomic on one file system: a reader finds it whole or not at all.

``CELERY_BROKER_TRANSPORT`` names :class:`Transport` when there is no
``REDIS_URL``.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL = ".part"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs) -> None:
        """Put ``payload`` onto ``queue``: written aside, then renamed into place."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL
        data = str_to_bytes(dumps(payload))
        try:
            with open(partial, "wb") as out:
                out.write(data)
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
