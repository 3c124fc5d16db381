"""The prediction log's spool: rows on their way to the store, kept on the serving pod's volume so
that a store that is slow or down, or a serving process that restarts, loses none of them.

Every batch a serving worker logs is appended here first; the writer process drains it into the
store in order and trims what the store committed. A spool is a directory
``<root>/<store key>/<name>/``:

- ``lock``: held (``flock``) by the serving worker that owns the spool, and by its writer
  process, for as long as either lives. A worker that starts takes over the oldest spool of its
  store that no one holds (a stopped or killed worker's) before it makes a new one, so a
  restarted worker carries on where the last one stopped, in order, and a pod's spools are never
  more than its workers.
- ``NNNNNNNNNNNNNNNN.seg``: segments. Each starts with :data:`MAGIC`, then frames: a header
  (payload bytes, rows, batch id, CRC-32 of both and the payload) and the payload, the rows as
  one orjson list. Drained segments are deleted; a drained spool is cut back to one empty
  segment.
- ``head``: the segment and offset of the first frame the store has not committed.

The store key is a hash of the store URL without its password: a spool is only ever drained into
the store its rows were meant for, and a rotated password does not orphan one.

Only past ``max_bytes`` (every segment counted) are rows refused, and the writer counts them.
A frame cut short (a full disk, a machine that lost power before the page cache reached the disk)
is found when the spool is opened: what is whole is kept, the torn tail is cut off and its rows
counted. Design and figures: docs/adr/0013-prediction-log-spool.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from modelfactory.sql import shown_url

log = logging.getLogger(__name__)

MAGIC = b"MFSPOOL1"
_HEADER = struct.Struct(">IIQI")  # payload bytes, rows, batch id, crc32
_HEAD = struct.Struct(">QQ")  # segment, offset
_MAX_FRAME = 1 << 30  # a header claiming more is garbage, not a frame
_SUFFIX = ".seg"


def store_key(url: str) -> str:
    """The spool directory of ``url``'s store: its URL without the password, hashed."""
    return hashlib.sha256(shown_url(url).encode()).hexdigest()[:16]


@dataclass
class Claim:
    """A spool directory held by this process: the lock lasts while ``lock_fd`` (or a copy a
    child process inherited) stays open."""

    path: Path
    lock_fd: int

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.lock_fd)


def _lock(path: Path) -> int | None:
    """An open, exclusively locked descriptor of ``path/lock``, or None if someone holds it (or the
    spool went away meanwhile)."""
    try:
        fd = os.open(path / "lock", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The holder may have removed the spool between our open and our lock.
        if os.stat(path / "lock").st_ino != os.fstat(fd).st_ino:
            raise OSError("removed")
    except OSError:
        os.close(fd)
        return None
    return fd


def claim(root: Path | str, url: str, create: bool = True) -> Claim:
    """The oldest spool of ``url``'s store under ``root`` no live process holds, else a new one.

    ``create=False``: only a spool a gone worker left is taken, no new one is made (raises
    FileNotFoundError when there is none): how a writer finds spools to drain beside its own.
    Raises OSError when ``root`` cannot be written.
    """
    stores = Path(root) / store_key(url)
    stores.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in stores.iterdir() if p.is_dir() and not p.name.startswith(".")):
        fd = _lock(path)
        if fd is not None:
            return Claim(path, fd)
    if not create:
        raise FileNotFoundError(f"no unclaimed spool under {stores}")
    # Made under a hidden name and locked before it is renamed into sight: no one else can take it.
    name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(3).hex()}"
    hidden = stores / f".{name}"
    hidden.mkdir()
    (hidden / "lock").touch()
    fd = os.open(hidden / "lock", os.O_RDWR | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    hidden.rename(stores / name)
    return Claim(stores / name, fd)


def remove_if_empty(held: Claim) -> bool:
    """Delete a held spool that holds no rows (a worker stopping with its spool drained)."""
    try:
        spool = Spool(held.path, max_bytes=1 << 62, verify=False)
    except OSError:
        return False
    empty = spool.rows == 0 and spool.torn_rows == 0
    spool.close()
    if empty:
        hidden = held.path.with_name(f".{held.path.name}.removed")
        with contextlib.suppress(OSError):
            held.path.rename(hidden)  # out of sight first: a claimer never takes a half-removed one
            shutil.rmtree(hidden, ignore_errors=True)
    return empty


@dataclass
class Chunk:
    """Frames read from the head: their payloads, where they end, and the rows of frames that were
    unreadable (skipped, to be counted as dropped)."""

    payloads: list[bytes] = field(default_factory=list)
    rows: int = 0
    end: tuple[int, int] = (0, 0)
    corrupt_rows: int = 0


class Spool:
    """One spool directory, opened by the writer process that drains it.

    ``append`` (the thread taking batches from the serving worker) and ``read``/``advance`` (the
    thread draining into the store) may run at once. ``verify``: check the last segment for a
    torn tail and cut it off (the writer does; a check for emptiness needs not).
    """

    def __init__(
        self,
        path: Path | str,
        max_bytes: int,
        fsync: bool = False,
        segment_bytes: int | None = None,
        verify: bool = True,
    ):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.segment_bytes = segment_bytes or max(64 << 10, min(4 << 20, max_bytes // 16))
        self.torn_rows = 0  # rows of frames cut off the tail when opened
        self.last_batch_id: int | None = None
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}  # segment number -> bytes
        self._frames: dict[int, list[tuple[int, int]]] = {}  # segment -> [(offset, rows)] unread
        self._readers: dict[int, int] = {}
        self._appender: int | None = None
        self._head_fd = os.open(self.path / "head", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        for entry in self.path.iterdir():
            if entry.suffix == _SUFFIX and entry.stem.isdigit():
                self._sizes[int(entry.stem)] = entry.stat().st_size
        if not self._sizes:
            self._new_segment(1)
        head_segment, head_offset = self._read_head()
        for number in sorted(self._sizes):
            if number < head_segment:
                self._delete(number)  # drained before the last writer could delete it
        if not self._sizes:
            self._new_segment(head_segment)
        first = min(self._sizes)
        if head_segment != first or head_offset > self._sizes[first]:
            # A head past the end: the segment was cut back after a drain, then the process
            # stopped before it moved the head; everything in it now is new.
            head_offset = len(MAGIC)
        self._head = (first, max(len(MAGIC), head_offset))
        last = max(self._sizes)
        for number in sorted(self._sizes):
            start = self._head[1] if number == first else len(MAGIC)
            self._frames[number] = self._scan(number, start, verify and number == last)
        self._rows = sum(rows for frames in self._frames.values() for _, rows in frames)

    # -- state --------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        """Rows appended and not yet trimmed."""
        return self._rows

    @property
    def size(self) -> int:
        """Bytes of every segment on disk: what the bound counts."""
        return sum(self._sizes.values())

    def _read_head(self) -> tuple[int, int]:
        data = os.pread(self._head_fd, _HEAD.size, 0)
        if len(data) < _HEAD.size:
            return (min(self._sizes), len(MAGIC))
        return _HEAD.unpack(data)

    def _write_head(self) -> None:
        os.pwrite(self._head_fd, _HEAD.pack(*self._head), 0)
        if self.fsync:
            os.fdatasync(self._head_fd)

    def _segment(self, number: int) -> Path:
        return self.path / f"{number:016d}{_SUFFIX}"

    def _new_segment(self, number: int) -> None:
        fd = os.open(self._segment(number), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, MAGIC)
            if self.fsync:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        self._sizes[number] = len(MAGIC)
        self._frames[number] = []

    def _delete(self, number: int) -> None:
        reader = self._readers.pop(number, None)
        if reader is not None:
            os.close(reader)
        with contextlib.suppress(FileNotFoundError):
            self._segment(number).unlink()
        self._sizes.pop(number, None)
        self._frames.pop(number, None)

    def _reader(self, number: int) -> int:
        fd = self._readers.get(number)
        if fd is None:
            fd = self._readers[number] = os.open(self._segment(number), os.O_RDONLY | os.O_CLOEXEC)
        return fd

    def _scan(self, number: int, start: int, verify: bool) -> list[tuple[int, int]]:
        """The frames of a segment from ``start``: (offset, rows). With ``verify``, every payload
        is checked and the segment cut after its last whole frame (the rows of a torn one
        counted in ``torn_rows``)."""
        size = self._sizes[number]
        fd = self._reader(number)
        if os.pread(fd, len(MAGIC), 0) != MAGIC:
            log.warning(
                "%s is not a spool segment: its %d bytes are skipped", self._segment(number), size
            )
            return []
        frames: list[tuple[int, int]] = []
        offset = start
        while offset < size:
            header = os.pread(fd, _HEADER.size, offset)
            whole = len(header) == _HEADER.size
            length, rows, batch_id, crc = _HEADER.unpack(header) if whole else (0, 0, 0, 0)
            end = offset + _HEADER.size + length
            good = whole and 0 < length < _MAX_FRAME and end <= size
            if good and verify:
                payload = os.pread(fd, length, offset + _HEADER.size)
                good = zlib.crc32(payload, zlib.crc32(header[:16])) == crc
            if not good:
                if verify:
                    self._cut(number, offset, rows if whole and rows < _MAX_FRAME else 0)
                break
            frames.append((offset, rows))
            self.last_batch_id = batch_id
            offset = end
        return frames

    def _cut(self, number: int, offset: int, rows: int) -> None:
        torn = self._sizes[number] - offset
        log.warning(
            "prediction spool %s: the last %d bytes of segment %d are not a whole frame (a write "
            "cut short); the frames before them are kept, the %d rows of the torn one are lost",
            self.path,
            torn,
            number,
            rows,
        )
        os.truncate(self._segment(number), offset)
        self._sizes[number] = offset
        self.torn_rows += rows

    # -- appending ----------------------------------------------------------------------------
    def append(self, frames: list[tuple[int, bytes]], batch_id: int) -> int:
        """Append ``frames`` ((rows, payload), in order) as one write; returns the rows kept.

        Frames past the bound are refused whole, the rest kept: what fits is the prefix.
        """
        with self._lock:
            number = max(self._sizes)
            size = self._sizes[number]
            if size > len(MAGIC) and size + sum(len(p) for _, p in frames) > self.segment_bytes:
                number += 1
                size = len(MAGIC)  # a new segment, made below once something fits
            room = self.max_bytes - self.size - (len(MAGIC) if number not in self._sizes else 0)
            data, kept, placed = [], 0, []
            offset = size
            for rows, payload in frames:
                header = _HEADER.pack(len(payload), rows, batch_id, 0)
                crc = zlib.crc32(payload, zlib.crc32(header[:16]))
                framed = header[:16] + crc.to_bytes(4, "big") + payload
                if len(framed) > room:
                    break
                room -= len(framed)
                data.append(framed)
                placed.append((offset, rows))
                offset += len(framed)
                kept += rows
            if not data:
                return 0
            if number not in self._sizes:
                self._close_appender()
                self._new_segment(number)
            fd = self._appender_fd(number)
            blob = b"".join(data)
            written = os.write(fd, blob)
            if written != len(blob):  # a full disk: undo, so the tail stays whole
                os.ftruncate(fd, size)
                raise OSError(f"short write to {self._segment(number)} ({written} of {len(blob)})")
            if self.fsync:
                os.fdatasync(fd)
            self._sizes[number] = offset
            self._frames[number].extend(placed)
            self._rows += kept
            self.last_batch_id = batch_id
            return kept

    def _appender_fd(self, number: int) -> int:
        if self._appender is None:
            self._appender = os.open(
                self._segment(number), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
            )
        return self._appender

    def _close_appender(self) -> None:
        if self._appender is not None:
            os.close(self._appender)
            self._appender = None

    # -- draining -----------------------------------------------------------------------------
    def read(self, max_rows: int) -> Chunk:
        """Whole frames from the head, at least one, up to ``max_rows`` rows when more than one."""
        with self._lock:
            chunk = Chunk(end=self._head)
            numbers = sorted(self._frames)
            for position, number in enumerate(numbers):
                frames = self._frames[number]
                for index, (offset, rows) in enumerate(frames):
                    if chunk.payloads and chunk.rows + rows > max_rows:
                        return chunk
                    fd = self._reader(number)
                    header = os.pread(fd, _HEADER.size, offset)
                    length, _, _, crc = _HEADER.unpack(header)
                    payload = os.pread(fd, length, offset + _HEADER.size)
                    if zlib.crc32(payload, zlib.crc32(header[:16])) == crc:
                        chunk.payloads.append(payload)
                        chunk.rows += rows
                    else:  # damaged on disk since it was written or scanned
                        chunk.corrupt_rows += rows
                    following = frames[index + 1][0] if index + 1 < len(frames) else None
                    chunk.end = (number, following or self._sizes[number])
                if position + 1 < len(numbers):  # all of this segment is read
                    chunk.end = (numbers[position + 1], len(MAGIC))
            return chunk

    def advance(self, chunk: Chunk) -> None:
        """The store has committed ``chunk``: trim it (delete drained segments; cut a drained
        spool back to an empty segment)."""
        with self._lock:
            number, offset = chunk.end
            for segment in sorted(self._frames):
                if segment < number:
                    self._rows -= sum(rows for _, rows in self._frames[segment])
                    self._delete(segment)
                elif segment == number:
                    frames = self._frames[segment]
                    done = [f for f in frames if f[0] < offset]
                    self._rows -= sum(rows for _, rows in done)
                    self._frames[segment] = frames[len(done) :]
            if self._rows == 0 and offset > len(MAGIC):
                # Drained: cut the segment back before moving the head, so a crash between
                # the two finds a head past the end (read as empty), never old frames again.
                os.truncate(self._segment(number), len(MAGIC))
                self._sizes[number] = len(MAGIC)
                offset = len(MAGIC)
            self._head = (number, offset)
            self._write_head()

    def close(self) -> None:
        with self._lock:
            self._close_appender()
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()
            os.close(self._head_fd)
