"""Near-duplicate detection within an album (see docs/dedupe.md).

A duplicate is the same photo re-encoded or resized. A filter, a crop, a mirror image, a rotation or
another photo is a different picture and is kept. The caller checks the exact content hash (SHA-256
of the bytes) first; this module handles everything that changes the bytes but not the photo.

Three measures, all computed once per picture from a fully decoded RGB image, must all agree:

- colour: the RMS distance between per-channel colour histograms of a 48x48 thumbnail (each channel
  normalised to sum 1, so the image size does not matter). Catches greyscale, sepia, brightness and
  contrast changes, and other photos with other colours.
- structure: the Hamming distance between 256-bit perceptual hashes (the signs of the 16x16 lowest
  DCT coefficients of a 32x32 grey thumbnail). Catches mirror images (which flip every odd horizontal
  frequency: about 128 bits), rotations, crops, inverted colours and other photos with similar colours.
- detail: how much fine detail (the RMS of the Laplacian, on a log scale) the picture has at a ladder
  of fixed scales, compared only at the scales that both pictures are large enough to show. Catches
  blur and sharpening, which change neither the colours nor the coarse structure; a smaller copy of
  the same photo is compared only at the scales it still holds, so resizing is not mistaken for blur.

Storage: ``Signature.histogram`` is a float32 vector (``HISTOGRAM_LENGTH`` values): the 3 x 16 colour
bins, then one log-detail value per entry of ``DETAIL_SCALES`` (NaN where the picture is too small to
show that scale). ``Signature.structure_hash`` is the 256-bit hash as 64 hex digits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

# Chosen by measurement on the labelled set: `python bench/dedupe_eval.py`, see docs/dedupe.md.
HISTOGRAM_RMS_THRESHOLD: float = 0.013
STRUCTURE_DISTANCE_THRESHOLD: int = 28
DETAIL_DISTANCE_THRESHOLD: float = 0.10

COLOUR_BINS = 16  # per channel
COLOUR_THUMBNAIL = 48  # the colour histogram is taken on a 48x48 area-averaged thumbnail
STRUCTURE_THUMBNAIL = 32
STRUCTURE_COEFFICIENTS = 16  # 16 x 16 lowest DCT coefficients = 256 bits
STRUCTURE_BITS = STRUCTURE_COEFFICIENTS * STRUCTURE_COEFFICIENTS
# Side of the square grey thumbnails on which fine detail is measured.
DETAIL_SCALES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
# A scale is measured only when the picture is at least this many times larger on both sides, so
# that a resized copy still holds all the detail the scale shows (resampling softens the last octave).
DETAIL_MIN_REDUCTION = 3
# Added to the RMS of the Laplacian (in grey levels) before the log, so flat pictures stay finite.
DETAIL_FLOOR = 0.5
# Large pictures are first box-reduced by an integer factor to a short side of 768 to 1535 pixels
# (at least 1.5 x the largest detail scale); every thumbnail is taken from that copy.
WORKING_SIDE = 768

HISTOGRAM_LENGTH = 3 * COLOUR_BINS + len(DETAIL_SCALES)
_COLOUR = slice(0, 3 * COLOUR_BINS)
_DETAIL = slice(3 * COLOUR_BINS, HISTOGRAM_LENGTH)
_HASH_WORDS = STRUCTURE_BITS // 64
_HASH_HEX_DIGITS = STRUCTURE_BITS // 4


@dataclass(frozen=True)
class Signature:
    """What is stored per picture (``Picture.histogram`` and ``Picture.structure_hash``)."""

    histogram: bytes
    structure_hash: str


class Distances(NamedTuple):
    histogram_rms: float
    structure: int
    detail: float

    def is_duplicate(self) -> bool:
        return (
            self.structure <= STRUCTURE_DISTANCE_THRESHOLD
            and self.histogram_rms <= HISTOGRAM_RMS_THRESHOLD
            and self.detail <= DETAIL_DISTANCE_THRESHOLD
        )


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: ``m @ x @ m.T`` is the 2-D DCT of an n x n block."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m[:STRUCTURE_COEFFICIENTS].astype(np.float64)


_DCT = _dct_matrix(STRUCTURE_THUMBNAIL)


def _soft_histogram(pixels: np.ndarray) -> np.ndarray:
    """Per-channel histograms (each summing to 1), each value shared between its two nearest bin
    centres, so that a value sitting on a bin edge does not jump from bin to bin with JPEG noise."""
    position = np.clip(pixels * (COLOUR_BINS / 256) - 0.5, 0, COLOUR_BINS - 1)
    lower = np.minimum(position.astype(np.intp), COLOUR_BINS - 2)
    upper_share = (position - lower).ravel()
    lower = (lower + np.arange(3) * COLOUR_BINS).ravel()
    size = 3 * COLOUR_BINS
    histogram = np.bincount(lower, weights=1 - upper_share, minlength=size)
    histogram += np.bincount(lower + 1, weights=upper_share, minlength=size)
    return (histogram / (pixels.size // 3)).astype(np.float32)


def compute_signature(image: Image.Image) -> Signature:
    """The dedupe signature of a decoded picture (RGB; other modes are converted)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    # One cheap pass over a large picture (an integer box reduction), then everything from that copy.
    factor = min(width, height) // WORKING_SIDE
    working = image.reduce(factor) if factor > 1 else image

    colour = np.asarray(working.resize((COLOUR_THUMBNAIL, COLOUR_THUMBNAIL), Image.Resampling.BOX), np.float32)
    histogram = _soft_histogram(colour)

    # Grey thumbnails, largest first; a side whose double was made is box-halved from it (cheap).
    grey = working.convert("L")
    shortest = min(width, height)
    sides = [side for side in DETAIL_SCALES if side * DETAIL_MIN_REDUCTION <= shortest]
    thumbnails: dict[int, Image.Image] = {}
    for side in sorted({*sides, STRUCTURE_THUMBNAIL}, reverse=True):
        source = thumbnails.get(2 * side, grey)
        thumbnails[side] = source.resize((side, side), Image.Resampling.BOX)

    small = np.asarray(thumbnails[STRUCTURE_THUMBNAIL], np.float64)
    coefficients = _DCT @ small @ _DCT.T
    structure_hash = np.packbits(coefficients.ravel() > 0).tobytes().hex()

    detail = np.full(len(DETAIL_SCALES), np.nan, dtype=np.float32)
    for i, side in enumerate(DETAIL_SCALES[: len(sides)]):
        t = np.asarray(thumbnails[side], np.float32)
        laplacian = 4 * t[1:-1, 1:-1] - t[:-2, 1:-1] - t[2:, 1:-1] - t[1:-1, :-2] - t[1:-1, 2:]
        detail[i] = np.log(np.sqrt(np.mean(laplacian * laplacian)) + DETAIL_FLOOR)

    return Signature(
        histogram=np.concatenate([histogram, detail]).astype(np.float32).tobytes(),
        structure_hash=structure_hash,
    )


def _parse_histogram(histogram: bytes) -> np.ndarray:
    vector = np.frombuffer(histogram, dtype=np.float32)
    if vector.shape != (HISTOGRAM_LENGTH,):
        raise ValueError(f"a histogram has {HISTOGRAM_LENGTH} float32 values, got {len(histogram)} bytes")
    return vector


def _parse_hash(structure_hash: str) -> np.ndarray:
    if len(structure_hash) != _HASH_HEX_DIGITS:
        raise ValueError(f"a structure hash has {_HASH_HEX_DIGITS} hex digits, got {len(structure_hash)}")
    return np.frombuffer(bytes.fromhex(structure_hash), dtype=np.uint64)


# The three measures, vectorised over stored rows against one candidate.
def _structure_distances(hashes: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Hamming distances. `hashes` is word-major, (4, n) uint64: each XOR + popcount runs over one
    contiguous column, about 8 times faster than over (n, 4) rows."""
    total = np.bitwise_count(hashes[0] ^ candidate[0]).astype(np.uint16)
    for word in range(1, len(candidate)):
        total += np.bitwise_count(hashes[word] ^ candidate[word])
    return total


def _colour_distances(colours: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    difference = colours - candidate
    return np.sqrt(np.einsum("ij,ij->i", difference, difference) / difference.shape[1])


def _detail_distances(details: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """The largest log-detail gap over the scales both pictures show (0 when they share none)."""
    gap = np.abs(details - candidate)
    return np.where(np.isnan(gap), 0, gap).max(axis=1)


def distances(a: Signature, b: Signature) -> Distances:
    """The three measures between two signatures (for evaluation and diagnostics)."""
    ha, hb = _parse_histogram(a.histogram), _parse_histogram(b.histogram)
    return Distances(
        histogram_rms=float(_colour_distances(ha[None, _COLOUR], hb[_COLOUR])[0]),
        structure=int(_structure_distances(_parse_hash(a.structure_hash)[:, None], _parse_hash(b.structure_hash))[0]),
        detail=float(_detail_distances(ha[None, _DETAIL], hb[_DETAIL])[0]),
    )


class SignatureIndex:
    """An album's stored signatures, searched all at once with numpy."""

    # Rows that pass the structure prefilter are measured in blocks of this many, so that the
    # temporaries stay in the CPU cache even when a whole album passes (about 5 times faster).
    BLOCK = 4096

    def __init__(self, capacity: int = 1024) -> None:
        capacity = max(capacity, 16)
        self._size = 0
        self._ids = np.empty(capacity, dtype=np.int64)
        self._hashes = np.empty((_HASH_WORDS, capacity), dtype=np.uint64)  # word-major, see above
        self._colours = np.empty((capacity, 3 * COLOUR_BINS), dtype=np.float32)
        self._details = np.empty((capacity, len(DETAIL_SCALES)), dtype=np.float32)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, bytes, str]]) -> SignatureIndex:
        """Load ``(picture_id, histogram, structure_hash)`` rows; malformed rows are skipped and logged."""
        ids: list[int] = []
        histograms: list[bytes] = []
        hashes: list[bytes] = []
        skipped = 0
        for picture_id, histogram, structure_hash in rows:
            try:
                histogram = bytes(histogram)  # database drivers may return a memoryview
                raw_hash = bytes.fromhex(structure_hash)
            except (TypeError, ValueError):
                histogram = raw_hash = b""
            if len(histogram) != 4 * HISTOGRAM_LENGTH or len(raw_hash) != STRUCTURE_BITS // 8:
                skipped += 1
                continue
            ids.append(int(picture_id))
            histograms.append(histogram)
            hashes.append(raw_hash)
        if skipped:
            logger.warning("dedupe: skipped %d stored signatures of an unexpected shape", skipped)
        index = cls(capacity=len(ids))
        if ids:
            n = len(ids)
            vectors = np.frombuffer(b"".join(histograms), dtype=np.float32).reshape(n, HISTOGRAM_LENGTH)
            index._ids[:n] = ids
            index._hashes[:, :n] = np.frombuffer(b"".join(hashes), dtype=np.uint64).reshape(n, _HASH_WORDS).T
            index._colours[:n] = vectors[:, _COLOUR]
            index._details[:n] = vectors[:, _DETAIL]
            index._size = n
        return index

    def __len__(self) -> int:
        return self._size

    def find_duplicate(self, signature: Signature) -> int | None:
        """The id of a stored duplicate of ``signature`` (the closest in colour if several), or None."""
        if not self._size:
            return None
        vector = _parse_histogram(signature.histogram)
        colour, detail = vector[_COLOUR], vector[_DETAIL]
        # Structure first: the cheapest measure (4 XOR + popcount per row) and the most selective.
        structure = _structure_distances(self._hashes[:, : self._size], _parse_hash(signature.structure_hash))
        near = np.flatnonzero(structure <= STRUCTURE_DISTANCE_THRESHOLD)
        best: tuple[float, int] | None = None
        for start in range(0, near.size, self.BLOCK):
            rows = near[start : start + self.BLOCK]
            colour_distances = _colour_distances(self._colours[rows], colour)
            keep = colour_distances <= HISTOGRAM_RMS_THRESHOLD
            rows, colour_distances = rows[keep], colour_distances[keep]
            keep = _detail_distances(self._details[rows], detail) <= DETAIL_DISTANCE_THRESHOLD
            rows, colour_distances = rows[keep], colour_distances[keep]
            if rows.size:
                closest = int(np.argmin(colour_distances))
                if best is None or colour_distances[closest] < best[0]:
                    best = (float(colour_distances[closest]), int(self._ids[rows[closest]]))
        return None if best is None else best[1]

    def add(self, picture_id: int, signature: Signature) -> None:
        """Remember a newly stored picture (amortised O(1): the arrays double when full)."""
        vector = _parse_histogram(signature.histogram)
        structure = _parse_hash(signature.structure_hash)
        if self._size == len(self._ids):
            self._grow()
        i = self._size
        self._ids[i] = picture_id
        self._hashes[:, i] = structure
        self._colours[i] = vector[_COLOUR]
        self._details[i] = vector[_DETAIL]
        self._size += 1

    def _grow(self) -> None:
        size, capacity = self._size, 2 * len(self._ids)
        ids = np.empty(capacity, dtype=np.int64)
        hashes = np.empty((_HASH_WORDS, capacity), dtype=np.uint64)
        colours = np.empty((capacity, self._colours.shape[1]), dtype=np.float32)
        details = np.empty((capacity, self._details.shape[1]), dtype=np.float32)
        ids[:size], hashes[:, :size] = self._ids[:size], self._hashes[:, :size]
        colours[:size], details[:size] = self._colours[:size], self._details[:size]
        self._ids, self._hashes, self._colours, self._details = ids, hashes, colours, details
