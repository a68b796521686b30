"""A zip archive produced entry by entry while it is sent: memory stays constant whatever its size.

Used by the album download (albums/services.py `album_zip`). Built on the standard library's
`zipfile` writing into a write-only, non-seekable buffer that is drained after every block:
`zipfile` then writes data descriptors after each entry, and ZIP64 records once offsets pass
4 GiB, so any number of pictures fits.

Why not zipstream-ng (the maintained streaming-zip package): what it adds over this is knowing
the archive's size before sending it (a `Content-Length`), which needs every file's size up
front, i.e. a HEAD per original on S3 before the first byte goes out, and its own zip writer to
trust. Each of our entries is at most EVERHASH_MAX_IMAGE_BYTES (or the spooled manifest), so
`zipfile`'s streamed entries are enough; this module is 60 lines of stdlib and no dependency.
Revisit if downloads need resuming (Range) or a size shown up front.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

BLOCK = 256 * 1024


@dataclass(frozen=True)
class Entry:
    """One file of the archive: its name, its time ((year, month, day, hour, minute, second)),
    and its bytes in blocks (an iterable is read only when the entry is written)."""

    name: str
    date_time: tuple[int, int, int, int, int, int]
    blocks: Iterable[bytes]


class _Buffer(io.RawIOBase):
    """A write-only file whose written bytes are collected and handed out in chunks."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def drain(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks = []
        return data


def blocks_of(data: bytes, size: int = BLOCK) -> Iterator[bytes]:
    """`data` in blocks of `size` bytes (so each is sent before the next is compressed)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def stream_zip(entries: Iterable[Entry]) -> Iterator[bytes]:
    """The archive of `entries` (stored, not compressed: photos do not compress), in chunks.

    `entries` is consumed lazily: a generator may do work between entries (read the next file,
    write a manifest row) and an exception it raises ends the stream, visibly incomplete.
    """
    buffer = _Buffer()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for entry in entries:
            with archive.open(zipfile.ZipInfo(entry.name, entry.date_time), "w") as target:
                for block in entry.blocks:
                    target.write(block)
                    yield buffer.drain()
            yield buffer.drain()
    yield buffer.drain()
