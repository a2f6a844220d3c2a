"""The package's one bag reader and one bag writer, on top of `rosbags`.

Reads rosbag2 (mcap and sqlite3) and ROS 1 bags; writes rosbag2 bags (mcap by default,
``version=9``, message definitions included) that ``ros2 bag info`` on a real ROS 2
install also reads. Imports no rclpy: messages are `rosbags` dataclasses, whose field
names are those of the ROS messages, so the converters in `ssl_robot.msgconv` take
both kinds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from rosbags.interfaces import Connection
    from rosbags.typesys.store import Typestore

#: The message types of the ROS 2 distro the package targets (Kilted).
_TYPESTORE: Typestore | None = None


def typestore() -> Typestore:
    """Return the shared ROS 2 Kilted typestore (built once, it is slow to build)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
    return _TYPESTORE


def msg_class(msgtype: str) -> type:
    """Return the rosbags dataclass for a ROS message type such as 'sensor_msgs/msg/Image'."""
    return typestore().types[msgtype]


class BagError(Exception):
    """A bag could not be opened, read or written; the message names the file."""


@dataclass(frozen=True)
class BagMessage:
    """One deserialised message of a bag.

    Attributes:
        topic: Topic name.
        msgtype: ROS message type, e.g. 'sensor_msgs/msg/Image'.
        log_time_ns: When the recorder received it (bag time).
        msg: The message (a rosbags dataclass with the ROS field names).
    """

    topic: str
    msgtype: str
    log_time_ns: int
    msg: object


def stamp_to_ns(stamp: object) -> int:
    """Convert a builtin_interfaces/Time (rclpy or rosbags) to integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(time_ns: int, stamp_cls: type | None = None) -> object:
    """Build a builtin_interfaces/Time from nanoseconds (rosbags class unless given)."""
    cls = stamp_cls or msg_class('builtin_interfaces/msg/Time')
    return cls(sec=int(time_ns // 1_000_000_000), nanosec=int(time_ns % 1_000_000_000))


class BagReader:
    """Reads one or more bags (rosbag2 directories, .mcap/.db3 files, ROS 1 .bag files).

    Use as a context manager::

        with BagReader([path]) as bag:
            for m in bag.messages(['/odom']):
                ...

    Raises:
        BagError: On open, when a path is missing, truncated, corrupt or not a bag.
    """

    def __init__(self, paths: Sequence[Path | str] | Path | str) -> None:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        for path in self.paths:
            if not path.exists():
                raise BagError(f'{path}: no such bag')
        try:
            self._reader = AnyReader(self.paths, default_typestore=typestore())
        except Exception as exc:  # unknown format, a directory without metadata.yaml, ...
            raise BagError(f'{_names(self.paths)}: not a bag: {exc}') from exc

    def __enter__(self) -> BagReader:
        try:
            self._reader.open()
        except Exception as exc:  # rosbags raises many kinds; give one clear error
            raise BagError(f'{_names(self.paths)}: cannot open bag: {exc}') from exc
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()

    @property
    def topics(self) -> dict[str, str]:
        """Map of topic name to message type."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def message_counts(self) -> dict[str, int]:
        """Map of topic name to message count (as the bag's index says)."""
        counts: dict[str, int] = {}
        for c in self._reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        return counts

    @property
    def start_time_ns(self) -> int:
        """Bag time of the first message."""
        return self._reader.start_time

    @property
    def duration_s(self) -> float:
        """Bag duration in seconds."""
        return self._reader.duration / 1e9

    def require_topics(self, topics: Iterable[str]) -> None:
        """Raise a BagError naming the bag and every topic it lacks."""
        missing = [t for t in topics if t not in self.topics]
        if missing:
            raise BagError(
                f'{_names(self.paths)}: no topic {", ".join(missing)} '
                f'(the bag has {", ".join(sorted(self.topics)) or "no topics"})')

    def _connections(self, topics: Iterable[str] | None) -> list[Connection]:
        if topics is None:
            return list(self._reader.connections)
        wanted = set(topics)
        return [c for c in self._reader.connections if c.topic in wanted]

    def raw_messages(
        self, topics: Iterable[str] | None = None,
    ) -> Iterator[tuple[Connection, int, bytes]]:
        """Yield (connection, log_time_ns, serialized bytes) in bag-time order."""
        connections = self._connections(topics)
        if not connections:
            return
        try:
            yield from self._reader.messages(connections=connections)
        except Exception as exc:
            raise BagError(f'{_names(self.paths)}: bag is corrupt or truncated: {exc}') from exc

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Yield deserialised messages of the given topics (all when None), in bag-time order.

        Raises:
            BagError: When the bag turns out corrupt or truncated while reading, or a
                message cannot be deserialised; the error names file and topic.
        """
        for conn, log_time, raw in self.raw_messages(topics):
            try:
                msg = self._reader.deserialize(raw, conn.msgtype)
            except Exception as exc:
                raise BagError(
                    f'{_names(self.paths)}: cannot decode a {conn.msgtype} message on '
                    f'{conn.topic}: {exc}') from exc
            yield BagMessage(conn.topic, conn.msgtype, log_time, msg)


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


def _names(paths: Sequence[Path]) -> str:
    return ', '.join(str(p) for p in paths)
