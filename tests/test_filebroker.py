"""The development broker never lets a worker read a message half-written: a
message is written aside and renamed into place (core/filebroker.py)."""

from __future__ import annotations

import builtins
from queue import Empty

import pytest
from kombu import Connection

from core import filebroker


@pytest.fixture
def channel(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    connection = Connection(
        "filesystem://localhost/",
        transport=filebroker.Transport,
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(tmp_path),
        },
    )
    channel = connection.channel()
    yield channel
    connection.release()


def test_a_consumer_polling_while_a_message_is_written_finds_nothing_then_all(
    channel, monkeypatch
):
    seen_while_writing = []

    class PollingDuringTheWrite:
        """A file whose write lets the consumer poll first, as a worker's
        consumer thread does while another thread of it publishes."""

        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            try:
                seen_while_writing.append(channel._get("emails"))
            except Empty:
                seen_while_writing.append(None)
            return self.file.write(data)

    def opening(path, mode="r", *args, **kwargs):
        return PollingDuringTheWrite(builtins.open(path, mode, *args, **kwargs))

    monkeypatch.setattr(filebroker, "open", opening, raising=False)
    # when: a message is published while the consumer polls in the middle of it
    channel._put("emails", {"body": "x" * 10_000})
    # then: the consumer found no message (not an empty one) during the write
    assert seen_while_writing == [None]
    # and: the whole message afterwards, once
    monkeypatch.undo()
    assert channel._get("emails") == {"body": "x" * 10_000}
    with pytest.raises(Empty):
        channel._get("emails")
