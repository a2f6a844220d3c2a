"""The package's one bag reader, on top of `rosbags`.

Reads rosbag2 (mcap and sqlite3) and ROS 1 bags, and salvages an unfinished recording on
the fly (`ssl_robot.bags.recovery`). Imports no rclpy: messages are `rosbags` dataclasses,
whose field names are those of the ROS messages, so the converters in `ssl_robot.msgconv`
take both kinds.
"""
from __future__ import annotations

import logging
from pathlib import Path
import tempfile
from typing import TYPE_CHECKING

from rosbags.highlevel import AnyReader
from rosbags.interfaces import Nodetype

from ssl_robot.bags.recovery import needs_recovery, reindex, scan_file
from ssl_robot.bags.typestore import (  # noqa: F401 - re-exported for callers of the reader
    BagError,
    BagMessage,
    msg_class,
    ns_to_stamp,
    stamp_to_ns,
    typestore,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from rosbags.interfaces import Connection

_LOG = logging.getLogger(__name__)

class BagReader:
    """Reads one or more bags (rosbag2 directories, .mcap/.db3 files, ROS 1 .bag files).

    Use as a context manager::

        with BagReader([path]) as bag:
            for m in bag.messages(['/odom']):
                ...

    Raises:
        BagError: On open, when a path is missing, truncated, corrupt or not a bag.
    """

    def __init__(self, paths: Sequence[Path | str] | Path | str, *,
                 recover: bool = True) -> None:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._kilted_fallback: set[str] = set()
        for path in self.paths:
            if not path.exists():
                raise BagError(f'{path}: no such bag')
        self._open_paths = [self._recovered(p) if recover else p for p in self.paths]
        for path, opened in zip(self.paths, self._open_paths):
            _check_bag_path(path, opened)
        try:
            self._reader = AnyReader(self._open_paths, default_typestore=typestore())
        except Exception as exc:
            self._cleanup()
            raise BagError(f'{_names(self.paths)}: cannot open bag: {exc}') from exc

    def _recovered(self, path: Path) -> Path:
        """`path`, or a recovered copy of it when a recorder left it unfinished."""
        if not needs_recovery(path):
            return path
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix='ssl_robot_recovered_')
        out = Path(self._tmp.name) / path.name
        report = reindex(path, out=out)
        _LOG.warning('%s: unfinished bag (recorder killed?); reading a recovered view with '
                     '%d messages; `ssl-robot bag reindex %s` makes the recovery permanent',
                     path, report.message_count, path)
        return out

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> BagReader:
        try:
            self._reader.open()
        except Exception as exc:  # rosbags raises many kinds; give one clear error
            self._cleanup()
            raise BagError(f'{_diagnose(self.paths)}: cannot open bag: {exc}') from exc
        _match_storage_connections(self._reader)
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()
        self._cleanup()

    @property
    def is_ros2(self) -> bool:
        """Whether the bag is a rosbag2 bag (CDR), not a ROS 1 bag."""
        return bool(self._reader.is2)

    def deserialize(self, raw: bytes, msgtype: str) -> object:
        """Deserialise one raw message of this bag (CDR or ROS 1 serialisation)."""
        return self._reader.deserialize(raw, msgtype)

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
        self, topics: Iterable[str] | None = None, *, start_ns: int | None = None,
    ) -> Iterator[tuple[Connection, int, bytes]]:
        """Yield (connection, log_time_ns, serialized bytes) in bag-time order.

        Args:
            topics: Topics to read (all when None).
            start_ns: Skip messages logged before this bag time.
        """
        connections = self._connections(topics)
        if not connections:
            return
        try:
            yield from self._reader.messages(connections=connections, start=start_ns)
        except Exception as exc:
            raise BagError(f'{_diagnose(self.paths)}: bag is corrupt or truncated: {exc}') from exc

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
                msg = self._decode_with_kilted(conn, raw, exc)
            yield BagMessage(conn.topic, conn.msgtype, log_time, msg)

    def _decode_with_kilted(self, conn: Connection, raw: bytes, exc: Exception) -> object:
        """Decode with the Kilted definition when the bag's own definition fails.

        Some rosbag2 bags carry placeholder definitions (the rosbag2 test bags store
        'uint8 level' for rcl_interfaces/msg/Log); the Kilted one is then the best guess.

        Raises:
            BagError: When that fails too, or the bag is ROS 1; names file and topic.
        """
        if self.is_ros2 and conn.msgtype in typestore().types:
            try:
                msg = typestore().deserialize_cdr(raw, conn.msgtype)
            except Exception:  # noqa: BLE001, S110 - reported below with the first error
                pass
            else:
                if conn.topic not in self._kilted_fallback:
                    self._kilted_fallback.add(conn.topic)
                    _LOG.warning("%s: the bag's definition of %s does not decode %s (%s); "
                                 'using the ROS 2 Kilted definition', _names(self.paths),
                                 conn.msgtype, conn.topic, exc)
                return msg
        raise BagError(f'{_names(self.paths)}: cannot decode a {conn.msgtype} message on '
                       f'{conn.topic}: {exc}') from exc


def _names(paths: Sequence[Path]) -> str:
    return ', '.join(str(p) for p in paths)


_STORAGE_SUFFIXES = ('.mcap', '.db3', '.bag')


def _check_bag_path(path: Path, opened: Path) -> None:
    """Reject what is clearly not a bag with a message that says what is wrong."""
    if opened.is_dir():
        if not (opened / 'metadata.yaml').exists():
            raise BagError(f'{path}: not a rosbag2 bag (no metadata.yaml and no .mcap/.db3 '
                           'files in the directory)')
    elif opened.suffix not in _STORAGE_SUFFIXES:
        raise BagError(f'{path}: not a bag (expected a rosbag2 directory, .mcap, .db3 or a '
                       'ROS 1 .bag file)')
    elif opened.stat().st_size == 0:
        raise BagError(f'{path}: empty file')


def _diagnose(paths: Sequence[Path]) -> str:
    """Name the storage file that fails to open (a bag directory's file, not just the dir)."""
    for path in paths:
        if not path.is_dir():
            continue
        for file in sorted(path.iterdir()):
            if file.suffix in ('.mcap', '.db3'):
                try:
                    scan_file(file)
                except BagError:
                    return str(file)
    return _names(paths)


def _match_storage_connections(reader: AnyReader) -> None:
    """Let rosbags find the messages of rosbag2 bags whose QoS metadata disagree.

    rosbags (0.11.9) `DirectoryReader.messages` pairs the topics of metadata.yaml with the
    channels of the storage files by (topic, type, ext), and ext includes the offered QoS
    profiles. The real rosbag2 recorder wrote infinite QoS durations as ``0/0`` in a
    version-4 metadata.yaml but as ``2147483647/4294967295`` in the mcap channel / sqlite3
    topic table, so nothing pairs and `messages()` yields nothing, silently. QoS says how
    a topic was offered, not which messages belong to it: pair by topic and type instead,
    by giving each storage connection the ext of its metadata.yaml connection.
    """
    for sub in getattr(reader, 'readers', []):
        storage = getattr(sub, 'storage', None)
        meta_conns = getattr(storage, 'connections', None)
        storages = getattr(storage, 'storages', None)
        if not meta_conns or not storages:
            continue
        ext_of = {(c.topic, c.msgtype): c.ext for c in meta_conns}
        for part in storages:
            part.connections[:] = [
                c._replace(ext=ext_of.get((c.topic, c.msgtype), c.ext))
                for c in part.connections]


def _kilted_value(value: object, node: tuple) -> object:
    """Convert a field value of a ROS 1 message to its ROS 2 (Kilted) field type."""
    kind, detail = node
    if kind == Nodetype.NAME:
        return to_kilted(value, detail)
    if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        sub = detail[0]
        if sub[0] == Nodetype.NAME:
            return [to_kilted(v, sub[1]) for v in value]
        return value
    return value


def to_kilted(msg: object, msgtype: str) -> object:
    """Convert a deserialised message (e.g. ROS 1) to the Kilted type of the same name.

    Fields are copied by name; fields the Kilted type lacks (ROS 1 ``Header.seq``) are
    dropped. ROS 1 time/duration already decode as builtin_interfaces types.

    Raises:
        KeyError: When `msgtype` is not a Kilted type.
        AttributeError: When the message lacks a field the Kilted type has.
    """
    _, fields = typestore().fielddefs[msgtype]
    values = {name: _kilted_value(getattr(msg, name), node) for name, node in fields}
    return msg_class(msgtype)(**values)


def kilted_cdr(reader: BagReader, conn: Connection, raw: bytes) -> bytes:
    """CDR bytes of one message of a bag, as the Kilted type of the same name expects.

    rosbag2 messages pass through unchanged; ROS 1 messages are deserialised and
    converted with `to_kilted`.

    Raises:
        KeyError: When the type has no Kilted counterpart.
    """
    if reader.is_ros2:
        return raw
    msg = reader.deserialize(raw, conn.msgtype)
    return bytes(typestore().serialize_cdr(to_kilted(msg, conn.msgtype), conn.msgtype))

