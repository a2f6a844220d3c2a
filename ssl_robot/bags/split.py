"""The split bag writer behind the recorder: splits, durable flushes, current metadata.

The layout and why it survives a SIGKILL are described in `ssl_robot.bags.recovery`, which
finishes what this writer leaves behind when it is killed.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
import shutil
from typing import TYPE_CHECKING

from rosbags.rosbag2 import Writer

from ssl_robot.bags.recovery import FileInfo, PLUGINS, scan_file, split_name, write_metadata
from ssl_robot.bags.typestore import BagError, typestore

if TYPE_CHECKING:
    from rosbags.interfaces import Connection


class SplitBagWriter:
    """Writes a rosbag2 bag as split files whose metadata stays current (see module doc).

    Args:
        path: Bag directory to create.
        storage: 'mcap' or 'sqlite3'.
        max_duration_s: Close a split after this much bag time (0: never).
        max_size_bytes: Close a split after this many message bytes (0: never).
        flush_period_s: Make the open split durable at least this often (bag time).

    Raises:
        BagError: When the output exists, the storage is unknown or writing fails.
    """

    def __init__(self, path: Path | str, *, storage: str = 'mcap', max_duration_s: float = 0.0,
                 max_size_bytes: int = 0, flush_period_s: float = 1.0) -> None:
        self.path = Path(path)
        if storage not in PLUGINS:
            raise BagError(f'{self.path}: unknown storage {storage!r} (use mcap or sqlite3)')
        if self.path.exists():
            raise BagError(f'{self.path}: output bag already exists')
        self.storage = storage
        self.max_duration_ns = int(max_duration_s * 1e9)
        self.max_size_bytes = int(max_size_bytes)
        self.flush_period_ns = int(flush_period_s * 1e9)
        self.files: list[FileInfo] = []
        self.message_counts: dict[str, int] = {}
        self.bytes_written = 0
        #: Messages that survive a SIGKILL now (flushed to the OS, or in a closed split).
        self.durable_messages = 0
        self._types: dict[str, str] = {}
        self._writer: Writer | None = None
        self._connections: dict[str, Connection] = {}
        self._split_start_ns: int | None = None
        self._split_bytes = 0
        self._last_flush_ns = 0
        #: Set by the first failed write (a full disk...): later writes raise it at once.
        self.failure: BagError | None = None

    def _fail(self, exc: BaseException, what: str) -> BagError:
        """Remember (and return) why the bag cannot be written any more."""
        self.failure = BagError(f'{self.path}: {what} failed: {root_cause(exc)}; recording '
                                f'stopped, {self.durable_messages} messages are on disk')
        return self.failure

    def __enter__(self) -> SplitBagWriter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create the bag directory and its (empty) metadata."""
        try:
            self.path.mkdir(parents=True)
            write_metadata(self.path, self.storage, [])
        except OSError as exc:
            raise BagError(f'{self.path}: cannot create bag: {exc}') from exc

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic (idempotent); its definition comes from the Kilted typestore.

        Raises:
            BagError: When the type is not in the typestore (its definition is unknown).
        """
        if topic in self._types:
            return
        if msgtype not in typestore().types:
            raise BagError(f'{self.path}: no message definition for {msgtype} ({topic})')
        self._types[topic] = msgtype
        self.message_counts[topic] = 0
        if self._writer is not None:
            self._add_connection(topic, msgtype)

    def _add_connection(self, topic: str, msgtype: str) -> None:
        assert self._writer is not None
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=typestore())

    def _open_split(self, time_ns: int) -> None:
        name = split_name(self.path, len(self.files))
        self._writer = Writer(self.path / name, version=9,
                              storage_plugin=PLUGINS[self.storage])
        try:
            self._writer.open()
        except Exception as exc:
            raise BagError(f'{self.path / name}: cannot create split: {exc}') from exc
        self._connections = {}
        for topic, msgtype in self._types.items():
            self._add_connection(topic, msgtype)
        self._split_start_ns = time_ns
        self._split_bytes = 0
        self._last_flush_ns = time_ns

    def write_raw(self, topic: str, msgtype: str, data: bytes | memoryview,
                  time_ns: int) -> None:
        """Write a CDR-serialised message at bag time `time_ns` (splits when due).

        Raises:
            BagError: For an unknown type; and, after the first failed write (e.g. a full
                disk), at once on every later call, with the real cause.
        """
        if self.failure is not None:
            raise self.failure
        self.add_topic(topic, msgtype)
        try:
            if self._writer is not None and self._split_due(time_ns):
                self.split()
            if self._writer is None:
                self._open_split(time_ns)
            self._writer.write(self._connections[topic], int(time_ns), data)
            self.message_counts[topic] += 1
            self._split_bytes += len(data)
            self.bytes_written += len(data)
            if self.flush_period_ns and time_ns - self._last_flush_ns >= self.flush_period_ns:
                self.flush()
                self._last_flush_ns = time_ns
        except Exception as exc:
            if self.failure is not None:
                raise self.failure from None
            raise self._fail(exc, 'writing') from exc

    def _split_due(self, time_ns: int) -> bool:
        return bool((self.max_duration_ns
                     and time_ns - self._split_start_ns >= self.max_duration_ns)
                    or (self.max_size_bytes and self._split_bytes >= self.max_size_bytes))

    def flush(self) -> None:
        """Make everything written so far survive a SIGKILL of this process."""
        storage = self._writer.storage if self._writer is not None else None
        if storage is None or self.failure is not None:
            return
        # rosbags' McapWriter keeps up to 1 MiB in a pending chunk and sqlite3 one open
        # transaction until close; close the chunk / commit so the bytes reach the file.
        try:
            if hasattr(storage, 'close_chunk'):
                if any(storage.chunk.msgs.values()):
                    storage.close_chunk()
                storage.bio.flush()
            elif hasattr(storage, 'conn'):
                storage.conn.commit()
        except Exception as exc:
            raise self._fail(exc, 'flushing') from exc
        self.durable_messages = sum(self.message_counts.values())

    def split(self) -> None:
        """Close the current split file (if any); the next message opens a new one."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.close()
        except Exception as exc:
            raise BagError(f'{writer.path}: cannot finalise split: {exc}') from exc
        final = _finish_split_dir(self.path, writer.path)
        self.files.append(scan_file(final))
        write_metadata(self.path, self.storage, self.files)
        self.durable_messages = sum(self.message_counts.values())

    def close(self) -> None:
        """Close the last split and write the final metadata.

        After a failure the cut split is left as it is, for `ssl-robot bag reindex`.
        """
        if self.failure is None:
            self.split()


def root_cause(exc: BaseException) -> str:
    """The OS error behind `exc` (e.g. 'No space left on device'), else its message."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return f'{os.strerror(seen.errno)} ({errno.errorcode.get(seen.errno, seen.errno)})'
        seen = seen.__cause__ or seen.__context__
    return str(exc)


def _finish_split_dir(bag: Path, split_dir: Path) -> Path:
    """Move the storage file of a finished split up into the bag directory."""
    files = [p for p in split_dir.iterdir() if p.suffix in ('.mcap', '.db3')]
    if len(files) != 1:
        raise BagError(f'{split_dir}: expected one storage file, found {len(files)}')
    final = bag / files[0].name
    os.replace(files[0], final)
    shutil.rmtree(split_dir)
    return final
