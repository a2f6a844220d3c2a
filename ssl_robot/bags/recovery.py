"""Crash-safe bags: the split layout, kept-current metadata, and reindex/recovery.

`rosbags`' Writer writes the mcap footer/index and ``metadata.yaml`` only on close, so a
recorder killed with SIGKILL would leave an unreadable bag. The design here follows
``ros2 bag record`` and ``ros2 bag reindex``:

* A bag is a directory ``NAME/`` of split files ``NAME_0.mcap``, ``NAME_1.mcap``, ...
  (or ``.db3``). A split closes after ``max_duration_s`` of bag time or ``max_size_bytes``.
* The split being written lives in a sub-directory ``NAME/NAME_<i>/NAME_<i>.mcap`` (that
  is where rosbags' Writer puts it); when it closes it is moved up to ``NAME/`` and
  ``NAME/metadata.yaml`` is rewritten atomically to list every closed split. The
  metadata is written at start too, so the directory is a valid (empty) bag at all times.
* Every ``flush_period_s`` the open split is made durable: its pending mcap chunk is
  closed and flushed to the OS (sqlite3: the transaction is committed). A SIGKILL thus
  loses at most the last flush period, plus the process' unflushed buffers.
* `reindex` (``ssl-robot bag reindex NAME``) salvages a cut split (the complete mcap
  records before the cut; the committed sqlite3 rows) into a finished, indexed file and
  rebuilds ``metadata.yaml`` from the files present. `ssl_robot.bags.reader.BagReader` does
  the same transparently in a temporary directory when it meets an unfinished bag, and
  logs that it did.

Imports no rclpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import logging
import os
from pathlib import Path
import re
import shutil
import sqlite3
import tempfile

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.metadata import dump_qos_v9
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader
import yaml

from ssl_robot.bags.typestore import BagError, typestore

_LOG = logging.getLogger(__name__)

#: File suffix of each storage plugin.
SUFFIXES = {'mcap': '.mcap', 'sqlite3': '.db3'}
PLUGINS = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
_MCAP_MAGIC = b'\x89MCAP0\r\n'


def split_name(bag: Path, index: int) -> str:
    """Name (without suffix) of split `index` of bag directory `bag`, as ros2 bag names it."""
    return f'{bag.name}_{index}'


def _split_index(bag: Path, path: Path) -> int | None:
    match = re.fullmatch(re.escape(bag.name) + r'_(\d+)', path.stem if path.is_file()
                         else path.name)
    return int(match.group(1)) if match else None


@dataclass
class FileInfo:
    """What `metadata.yaml` says about one storage file."""

    path: Path
    start_ns: int
    end_ns: int
    count: int
    #: (topic, msgtype) -> {'count', 'digest', 'serialization_format', 'qos'}
    topics: dict[tuple[str, str], dict] = field(default_factory=dict)


def scan_file(path: Path) -> FileInfo:
    """Read topics, counts and time range of a finished storage file.

    Raises:
        BagError: When the file is not a readable mcap/sqlite3 storage file.
    """
    reader_cls = {'.mcap': McapReader, '.db3': Sqlite3Reader}.get(path.suffix)
    if reader_cls is None:
        raise BagError(f'{path}: not a rosbag2 storage file (.mcap or .db3)')
    reader = reader_cls(path)
    try:
        reader.open()
    except Exception as exc:
        raise BagError(f'{path}: cannot open storage file: {exc}') from exc
    try:
        topics: dict[tuple[str, str], dict] = {}
        for conn in reader.connections:
            digest = conn.digest
            if not digest and conn.msgtype in typestore().types:
                digest = typestore().hash_rihs01(conn.msgtype)
            entry = topics.setdefault((conn.topic, conn.msgtype), {
                'count': 0, 'digest': digest,
                'serialization_format': conn.ext.serialization_format,
                'qos': dump_qos_v9(list(conn.ext.offered_qos_profiles))})
            entry['count'] += conn.msgcount
        meta = reader.metadata
        count = meta.message_count
        return FileInfo(path, meta.start_time if count else 0,
                        meta.end_time if count else 0, count, topics)
    finally:
        reader.close()


def write_metadata(bag: Path, storage: str, files: list[FileInfo]) -> None:
    """Write `bag/metadata.yaml` (rosbag2 version 9) for `files`, atomically."""
    counted = [f for f in files if f.count]
    start = min((f.start_ns for f in counted), default=0)
    end = max((f.end_ns for f in counted), default=0)
    topics: dict[tuple[str, str], dict] = {}
    for info in files:
        for key, entry in info.topics.items():
            merged = topics.setdefault(key, {**entry, 'count': 0})
            merged['count'] += entry['count']
    count = sum(f.count for f in files)
    metadata = {'rosbag2_bagfile_information': {
        'version': 9,
        'storage_identifier': storage,
        'relative_file_paths': [f.path.name for f in files],
        'duration': {'nanoseconds': max(0, end - start - 1) if count else 0},
        'starting_time': {'nanoseconds_since_epoch': start},
        'message_count': count,
        'topics_with_message_count': [
            {'topic_metadata': {'name': topic, 'type': msgtype,
                                'serialization_format': e['serialization_format'],
                                'offered_qos_profiles': e['qos'],
                                'type_description_hash': e['digest']},
             'message_count': e['count']}
            for (topic, msgtype), e in topics.items()],
        'compression_format': '',
        'compression_mode': '',
        'files': [{'path': f.path.name,
                   'starting_time': {'nanoseconds_since_epoch': f.start_ns},
                   'duration': {'nanoseconds': max(0, f.end_ns - f.start_ns - 1)},
                   'message_count': f.count} for f in files],
        'custom_data': None,
        'ros_distro': 'rosbags',
    }}
    tmp = bag / 'metadata.yaml.tmp'
    tmp.write_text(yaml.safe_dump(metadata, sort_keys=False))
    os.replace(tmp, bag / 'metadata.yaml')


# -- recovery ---------------------------------------------------------------------------

def unfinished_splits(bag: Path) -> list[Path]:
    """Split sub-directories a recorder left behind (it was killed while writing them).

    Found by content (a sub-directory holding a .mcap/.db3 file), not by name: a killed
    bag that was copied or renamed keeps its unfinished split.
    """
    if not bag.is_dir():
        return []
    found = [p for p in bag.iterdir() if p.is_dir() and not p.name.startswith('.')
             and any(q.is_file() and q.suffix in ('.mcap', '.db3') for q in p.iterdir())]
    return sorted(found, key=lambda p: (_split_index(bag, p) is None,
                                        _split_index(bag, p) or 0, p.name))


def storage_files(bag: Path) -> list[Path]:
    """Storage files directly in a bag directory, in split order."""
    files = [p for p in bag.iterdir() if p.is_file() and p.suffix in ('.mcap', '.db3')]
    return sorted(files, key=lambda p: (_split_index(bag, p) is None,
                                        _split_index(bag, p) or 0, p.name))


def needs_recovery(bag: Path) -> bool:
    """Whether a bag directory was left unfinished (killed recorder, no metadata)."""
    if not bag.is_dir():
        return False
    if unfinished_splits(bag):
        return True
    return not (bag / 'metadata.yaml').exists() and bool(storage_files(bag))


def _mcap_complete_prefix(data: bytes) -> int:
    """Length of the leading part of an mcap file that holds only complete records."""
    if not data.startswith(_MCAP_MAGIC):
        return 0
    pos = len(_MCAP_MAGIC)
    while pos + 9 <= len(data):
        size = int.from_bytes(data[pos + 1:pos + 9], 'little')
        end = pos + 9 + size
        if end > len(data):
            break
        if data[pos] in (0x0F, 0x02):  # data end / footer: the file was finished after all
            return pos
        pos = end
    return pos


def salvage_mcap(src: Path, dst: Path) -> int:
    """Write to `dst` an indexed mcap with the complete records of a cut mcap `src`.

    Returns:
        Number of messages salvaged.

    Raises:
        BagError: When `src` is not an mcap file or holds no complete record.
    """
    data = src.read_bytes()
    prefix = _mcap_complete_prefix(data)
    if prefix <= len(_MCAP_MAGIC):
        raise BagError(f'{src}: not an mcap file or nothing complete in it')
    with tempfile.TemporaryDirectory(prefix='ssl_robot_salvage_') as tmp:
        fixed = Path(tmp) / 'fixed.mcap'
        # A data-end record and a footer without summary: rosbags then scans the records.
        footer = (b'\x0f' + (4).to_bytes(8, 'little') + (0).to_bytes(4, 'little')
                  + b'\x02' + (20).to_bytes(8, 'little') + bytes(20) + _MCAP_MAGIC)
        fixed.write_bytes(data[:prefix] + footer)
        return _rewrite(McapReader(fixed), src, dst, 'mcap')


def salvage_sqlite3(src: Path, dst: Path) -> int:
    """Write to `dst` the committed rows of a cut sqlite3 split `src`; the message count."""
    with tempfile.TemporaryDirectory(prefix='ssl_robot_salvage_') as tmp:
        copy = Path(tmp) / src.name
        shutil.copy2(src, copy)
        for extra in ('-journal', '-wal'):
            if Path(f'{src}{extra}').exists():
                shutil.copy2(f'{src}{extra}', f'{copy}{extra}')
        try:
            # A normal (not immutable) open rolls a hot journal back: committed rows only.
            with sqlite3.connect(copy) as conn:
                conn.execute('SELECT COUNT(*) FROM messages').fetchone()
            conn.close()
        except sqlite3.Error as exc:
            raise BagError(f'{src}: cannot salvage sqlite3 split: {exc}') from exc
        return _rewrite(Sqlite3Reader(copy), src, dst, 'sqlite3')


def _rewrite(reader: McapReader | Sqlite3Reader, src: Path, dst: Path, storage: str) -> int:
    """Open a storage reader of (a repaired copy of) `src`, copy its messages into `dst`.

    Returns:
        Number of messages copied.

    Raises:
        BagError: When the repaired copy does not open.
    """
    try:
        reader.open()
    except Exception as exc:
        raise BagError(f'{src}: cannot salvage: {exc}') from exc
    try:
        return _copy_messages(reader, dst, storage)
    finally:
        reader.close()


def _copy_messages(reader: McapReader | Sqlite3Reader, dst: Path, storage: str) -> int:
    """Copy every message of an open storage reader into a finished file `dst`."""
    # Not dst.parent / dst.stem: that may be the unfinished split directory itself.
    work = dst.parent / f'.{dst.stem}.reindex'
    if work.exists():
        shutil.rmtree(work)
    writer = Writer(work, version=9, storage_plugin=PLUGINS[storage])
    writer.open()
    conns = {}
    for conn in reader.connections:
        if conn.msgdef.data and conn.digest:
            conns[conn.id] = writer.add_connection(
                conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest,
                offered_qos_profiles=conn.ext.offered_qos_profiles)
        else:
            conns[conn.id] = writer.add_connection(conn.topic, conn.msgtype,
                                                   typestore=typestore())
    count = 0
    for conn, time_ns, data in reader.messages(reader.connections):
        writer.write(conns[conn.id], time_ns, data)
        count += 1
    writer.close()
    produced = work / f'{work.name}{dst.suffix}'
    os.replace(produced, dst)
    shutil.rmtree(work)
    return count


@dataclass
class ReindexReport:
    """What `reindex` did."""

    bag: Path
    files: list[Path]
    salvaged: dict[str, int]
    message_count: int
    #: Cut files that could not be salvaged (kept where they were), with the reason.
    failed: dict[str, str] = field(default_factory=dict)


def _storage_of(files: list[Path]) -> str:
    suffixes = {p.suffix for p in files}
    if len(suffixes) != 1:
        raise BagError(f'{files[0].parent}: mixed storage files {sorted(suffixes)}')
    return 'mcap' if suffixes == {'.mcap'} else 'sqlite3'


def reindex(bag: Path | str, *, out: Path | str | None = None) -> ReindexReport:
    """Finish an unfinished bag: salvage cut splits, rebuild `metadata.yaml`.

    Args:
        bag: Bag directory (a recorder's output, possibly killed).
        out: Where to build the recovered bag; in place when None. Finished split files
            are linked (symlinks) into `out`, salvaged ones written there.

    Returns:
        A report of the files and salvaged message counts.

    Raises:
        BagError: When `bag` is not a bag directory or nothing can be recovered.
    """
    bag = Path(bag)
    if not bag.is_dir():
        raise BagError(f'{bag}: not a bag directory')
    target = Path(out) if out is not None else bag
    if target != bag:
        target.mkdir(parents=True, exist_ok=True)
        for path in storage_files(bag):
            (target / path.name).symlink_to(path.resolve())
    salvaged: dict[str, int] = {}
    failed: dict[str, str] = {}
    for split_dir in unfinished_splits(bag):
        src = next(p for p in split_dir.iterdir() if p.suffix in ('.mcap', '.db3'))
        dst = target / src.name
        if dst.exists():
            failed[src.name] = f'{dst} exists already; {split_dir} kept'
            continue
        try:
            salvage = salvage_mcap if src.suffix == '.mcap' else salvage_sqlite3
            salvaged[src.name] = salvage(src, dst)
        except BagError as exc:
            # Never delete what could not be salvaged: in place, the cut file moves out of
            # the bag's files as NAME.cut (like a cut top-level file), so the bag is finished
            # and the bytes stay for another tool; elsewhere the original is left as it is.
            failed[src.name] = str(exc)
            if target == bag:
                kept = bag / (src.name + '.cut')
                os.replace(src, kept)
                if not any(split_dir.iterdir()):
                    split_dir.rmdir()
                _LOG.warning('%s (kept as %s)', exc, kept)
            else:
                _LOG.warning('%s (kept in %s)', exc, split_dir)
            continue
        if target == bag:
            shutil.rmtree(split_dir)
    for path in storage_files(target):  # a cut top-level file (killed, or copied half)
        if path.suffix != '.mcap' or path.is_symlink():
            continue
        try:
            scan_file(path)
            continue
        except BagError:
            pass
        kept = path.with_name(path.name + '.cut')
        work = path.with_name(f'.{path.name}.salvage')
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            salvaged[path.name] = salvage_mcap(path, work / path.name)
        except BagError as exc:
            failed[path.name] = str(exc)
            shutil.rmtree(work, ignore_errors=True)
            os.replace(path, kept)  # out of the bag's files, not deleted
            continue
        os.replace(path, kept)
        os.replace(work / path.name, path)
        shutil.rmtree(work, ignore_errors=True)
        _LOG.warning('%s: salvaged %d messages; the cut original is kept as %s', path,
                     salvaged[path.name], kept)
    files = storage_files(target)
    if not files:
        raise BagError(f'{bag}: no storage files (.mcap/.db3) to reindex')
    infos = [scan_file(p) for p in files]
    write_metadata(target, _storage_of(files), infos)
    return ReindexReport(target, files, salvaged, sum(i.count for i in infos), failed)
