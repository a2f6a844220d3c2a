"""The package's one bag writer: rosbag2 (mcap by default, ``version=9``, definitions in)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rosbags.rosbag2 import StoragePlugin, Writer

from ssl_robot.bags.typestore import BagError, typestore

if TYPE_CHECKING:
    from rosbags.interfaces import Connection


class BagWriter:
    """Writes a rosbag2 bag (mcap by default) with message definitions included.

    Use as a context manager; messages are rosbags dataclasses (`write`) or CDR bytes
    already serialised, e.g. by rclpy (`write_raw`).

    Raises:
        BagError: When the output exists or cannot be written.
    """

    def __init__(self, path: Path | str, *, storage: str = 'mcap') -> None:
        self.path = Path(path)
        plugins = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise BagError(f'{self.path}: unknown storage {storage!r} (use mcap or sqlite3)')
        if self.path.exists():
            raise BagError(f'{self.path}: output bag already exists')
        self._writer = Writer(self.path, version=9, storage_plugin=plugins[storage])
        self._connections: dict[str, Connection] = {}
        self.message_counts: dict[str, int] = {}

    def __enter__(self) -> BagWriter:
        try:
            self._writer.open()
        except Exception as exc:
            raise BagError(f'{self.path}: cannot create bag: {exc}') from exc
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Finalise the bag (index, metadata.yaml)."""
        try:
            self._writer.close()
        except OSError as exc:  # a full disk shows up here, when the last chunk is flushed
            raise BagError(f'{self.path}: cannot finish bag: {exc}') from exc

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic (idempotent); its definition comes from the Kilted typestore."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=typestore())
            self.message_counts[topic] = 0

    def write(self, topic: str, msgtype: str, msg: object, time_ns: int) -> None:
        """Serialise a rosbags message to CDR and write it at bag time `time_ns`."""
        self.write_raw(topic, msgtype, typestore().serialize_cdr(msg, msgtype), time_ns)

    def write_raw(self, topic: str, msgtype: str, data: bytes | memoryview,
                  time_ns: int) -> None:
        """Write an already CDR-serialised message at bag time `time_ns`."""
        self.add_topic(topic, msgtype)
        try:
            self._writer.write(self._connections[topic], int(time_ns), data)
        except OSError as exc:
            raise BagError(f'{self.path}: cannot write {topic}: {exc}') from exc
        self.message_counts[topic] += 1
