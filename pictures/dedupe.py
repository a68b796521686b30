"""Near-duplicate detection within an album (see docs/dedupe.md).

A duplicate is the same photo re-encoded or resized. A filter, a crop, a mirror image, a rotation or
another photo is a different picture and is kept. The exact content hash (SHA-256 of the bytes) is
checked first; this module handles everything that changes the bytes but not the photo, in two
stages: a signature filter over the whole album (below), loose, then a verification of each picture
it passes at a common scale, pixel by pixel (`compare`). `same_picture(a, b)` is the whole decision.

The signature filter: three measures, computed once per picture and stored on its row:

- colour: the RMS distance between per-channel colour histograms of a 48x48 thumbnail (each channel
  normalised to sum 1, so the image size does not matter). Catches greyscale, sepia, brightness and
  contrast changes, and other photos with other colours.
- structure: the Hamming distance between 256-bit perceptual hashes (the signs of the 16x16 lowest
  DCT coefficients of a 32x32 grey thumbnail). Catches mirror images (which flip every odd horizontal
  frequency: about 128 bits), rotations, crops, inverted colours and other photos with similar colours.
  Not asked of two nearly flat pictures (`is_flat`): their coefficients are near zero, their signs noise.
- detail: how much fine detail (the RMS of the Laplacian, on a log scale) the picture has at a ladder
  of fixed scales, compared only at the scales that both pictures are large enough to show. Catches
  blur and sharpening, which change neither the colours nor the coarse structure; a smaller copy of
  the same photo is compared only at the scales it still holds, so resizing is not mistaken for blur.

Storage: ``Signature.histogram`` is a float32 vector (``HISTOGRAM_LENGTH`` values): the 3 x 16 colour
bins, then one log-detail value per entry of ``DETAIL_SCALES`` (NaN where the picture is too small to
show that scale). ``Signature.structure_hash`` is the 256-bit hash as 64 hex digits.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
from django.conf import settings
from PIL import Image

from everhash.lib.images import (
    RENDITIONS,
    VerifiedImage,
    jpeg_luma,
    make_renditions,
    open_for_renditions,
    render,
)

logger = logging.getLogger(__name__)

# The signature filter: loose on purpose (every duplicate of the labelled set passes: colour 0.073 at most);
# verification decides. Chosen on the labelled set: `python bench/dedupe_eval.py`, see docs/dedupe.md.
HISTOGRAM_RMS_THRESHOLD: float = 0.08
# Two nearly flat pictures are not asked their structure (noise there): colour has to be closer. Flat
# duplicates stay well within it, and it keeps the album-wide colour pass over flat rows selective.
FLAT_HISTOGRAM_RMS_THRESHOLD: float = 0.06
STRUCTURE_DISTANCE_THRESHOLD: int = 80
DETAIL_DISTANCE_THRESHOLD: float = 1.0
# A nearly flat picture (is_flat): log(Laplacian RMS + DETAIL_FLOOR) at DETAIL_SCALES[FLAT_SCALE] at most this.
FLAT_SCALE = 0
FLAT_DETAIL_MAX: float = 1.5

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
    flat: bool = False  # both pictures nearly flat: the structure distance says nothing (see is_flat)

    def passes_filter(self) -> bool:
        return (
            self.histogram_rms <= _colour_limit(self.structure, flat=self.flat)
            and self.detail <= DETAIL_DISTANCE_THRESHOLD
        )


def _colour_limit(structure: int | np.ndarray, *, flat: bool | np.ndarray) -> float | np.ndarray:
    """The colour RMS the filter allows: HISTOGRAM_RMS_THRESHOLD when the structure is close, the
    stricter FLAT_HISTOGRAM_RMS_THRESHOLD when only both being flat lets the pair through, and -1
    (nothing passes) otherwise."""
    close = np.asarray(structure) <= STRUCTURE_DISTANCE_THRESHOLD
    limit = np.where(close, HISTOGRAM_RMS_THRESHOLD, np.where(flat, FLAT_HISTOGRAM_RMS_THRESHOLD, -1.0))
    return float(limit) if limit.ndim == 0 else limit


def is_flat(detail: np.ndarray) -> bool | np.ndarray:
    """Whether a picture is nearly flat, from the detail part of its signature (one profile, or rows of
    them): its fine detail at the smallest scale is below FLAT_DETAIL_MAX, or unknown (a picture too
    small to show that scale). The structure hash of a flat picture is the signs of near-zero DCT
    coefficients, i.e. noise that a re-encode reshuffles, so the filter does not ask it of two such."""
    first = detail[..., FLAT_SCALE]
    return np.isnan(first) | (first <= FLAT_DETAIL_MAX)


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


def _closest(rows: np.ndarray, distances: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the `limit` smallest distances, by distance then row, as sorted() would give
    them; the full sort only over those within the limit-th distance (ties included)."""
    within = np.arange(rows.size)
    if rows.size > limit:
        within = np.flatnonzero(distances <= np.partition(distances, limit - 1)[limit - 1])
    return within[np.lexsort((rows[within], distances[within]))[:limit]]


def _near_in_colour(colours: np.ndarray, norms: np.ndarray, candidate: np.ndarray, limit: float) -> np.ndarray:
    """Which rows may be within ``limit`` in colour (RMS): a superset, for a prefilter.

    |a - b|^2 = |a|^2 - 2 a.b + |b|^2, with the rows' |a|^2 stored: one matrix-vector product and no
    temporary of the whole array (about 5 times faster than _colour_distances on 10,000 rows). The
    product is einsum's own loop, not `@`: BLAS would start threads that spin on the other core for
    a product this small. The margin covers float32 rounding; whoever keeps a row measures it
    exactly with _colour_distances.
    """
    squared = norms - 2 * np.einsum("ij,j->i", colours, candidate) + float(candidate @ candidate)
    return squared <= colours.shape[1] * limit**2 + 1e-4


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
        flat=bool(is_flat(ha[_DETAIL]) and is_flat(hb[_DETAIL])),
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
        self._flat = np.empty(capacity, dtype=bool)
        # The flat rows again, contiguous (their numbers, colours and the colours' squared norms): a
        # flat candidate measures colour on these without gathering them from the whole album, as one
        # matrix-vector product (_near_in_colour).
        self._flat_count = 0
        self._flat_rows = np.empty(16, dtype=np.int64)
        self._flat_colours = np.empty((16, 3 * COLOUR_BINS), dtype=np.float32)
        self._flat_norms = np.empty(16, dtype=np.float32)

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
            index._flat[:n] = is_flat(vectors[:, _DETAIL])
            index._size = n
            flat_rows = np.flatnonzero(index._flat[:n])
            index._flat_count = flat_rows.size
            index._flat_rows = np.concatenate([flat_rows, np.empty(16, dtype=np.int64)])
            index._flat_colours = np.concatenate([index._colours[flat_rows], index._flat_colours])
            flat_colours = index._flat_colours[: flat_rows.size]
            index._flat_norms = np.concatenate([np.einsum("ij,ij->i", flat_colours, flat_colours), index._flat_norms])
        return index

    def __len__(self) -> int:
        return self._size

    def candidates(self, signature: Signature, *, limit: int = 8) -> list[tuple[int, Distances]]:
        """Stored pictures that pass the signature filter (all three measures within the FILTER limits),
        closest in colour first, at most ``limit``; each with its measures."""
        if not self._size:
            return []
        vector = _parse_histogram(signature.histogram)
        colour, detail = vector[_COLOUR], vector[_DETAIL]
        # Structure first: the cheapest measure (4 XOR + popcount per row) and the most selective.
        structure = _structure_distances(self._hashes[:, : self._size], _parse_hash(signature.structure_hash))
        flat = bool(is_flat(detail))
        near = np.flatnonzero(structure <= STRUCTURE_DISTANCE_THRESHOLD)
        if flat and self._flat_count:  # two flat pictures: their structure hashes are noise, not asked
            count = self._flat_count
            close = _near_in_colour(
                self._flat_colours[:count], self._flat_norms[:count], colour, FLAT_HISTOGRAM_RMS_THRESHOLD
            )
            flat_near = self._flat_rows[:count][close]
            # Not np.union1d, which sorts both: the structure's rows are few, and the order of `near`
            # does not matter (the answer is sorted at the end).
            near = np.concatenate([near, flat_near[~np.isin(flat_near, near)]]) if near.size else flat_near
        found: list[tuple[float, int, Distances]] = []
        for start in range(0, near.size, self.BLOCK):
            rows = near[start : start + self.BLOCK]
            colour_distances = _colour_distances(self._colours[rows], colour)
            keep = colour_distances <= _colour_limit(structure[rows], flat=flat & self._flat[rows])
            rows, colour_distances = rows[keep], colour_distances[keep]
            detail_distances = _detail_distances(self._details[rows], detail)
            keep = detail_distances <= DETAIL_DISTANCE_THRESHOLD
            rows, colour_distances, detail_distances = rows[keep], colour_distances[keep], detail_distances[keep]
            # Only the closest `limit` of the block can be among the closest overall: the Python loop
            # below stays short however many rows pass (a flat picture among many flat ones).
            closest = _closest(rows, colour_distances, limit)
            for row, c, d in zip(rows[closest], colour_distances[closest], detail_distances[closest], strict=True):
                both_flat = flat and bool(self._flat[row])
                found.append((float(c), int(row), Distances(float(c), int(structure[row]), float(d), both_flat)))
            found = sorted(found)[:limit]
        return [(int(self._ids[row]), measured) for _, row, measured in sorted(found)[:limit]]

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
        self._flat[i] = is_flat(vector[_DETAIL])
        self._size += 1
        if self._flat[i]:
            if self._flat_count == len(self._flat_rows):
                self._flat_rows = np.concatenate([self._flat_rows, np.empty_like(self._flat_rows)])
                self._flat_colours = np.concatenate([self._flat_colours, np.empty_like(self._flat_colours)])
                self._flat_norms = np.concatenate([self._flat_norms, np.empty_like(self._flat_norms)])
            self._flat_rows[self._flat_count] = i
            self._flat_colours[self._flat_count] = vector[_COLOUR]
            self._flat_norms[self._flat_count] = vector[_COLOUR] @ vector[_COLOUR]
            self._flat_count += 1

    def _grow(self) -> None:
        size, capacity = self._size, 2 * len(self._ids)
        ids = np.empty(capacity, dtype=np.int64)
        hashes = np.empty((_HASH_WORDS, capacity), dtype=np.uint64)
        colours = np.empty((capacity, self._colours.shape[1]), dtype=np.float32)
        details = np.empty((capacity, self._details.shape[1]), dtype=np.float32)
        flat = np.empty(capacity, dtype=bool)
        ids[:size], hashes[:, :size] = self._ids[:size], self._hashes[:, :size]
        colours[:size], details[:size], flat[:size] = self._colours[:size], self._details[:size], self._flat[:size]
        self._ids, self._hashes, self._colours, self._details, self._flat = ids, hashes, colours, details, flat


# --- Verification at a common scale -------------------------------------------------------------
# A candidate that passes the signature filter is compared pixel by pixel with the stored picture, both
# seen within the "medium" rendition's box (VERIFY_RENDITION, at most 1024 px: a picture that fits by
# its own pixels, a larger one reduced, stored as that rendition), then the larger reduced to the
# smaller's size. The measures are combined by gradient-boosted trees (dedupe_model.json).

VERIFY_RENDITION = "medium"
TONE_SIDE = 32  # tone and colour are compared on thumbnails that fit in 32 x 32
SSIM_WINDOW = 8
_SSIM_C1, _SSIM_C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


class Comparison(NamedTuple):
    """How two pictures differ at their common scale (see docs/dedupe.md)."""

    aspect: float  # relative difference of the two scale factors (a crop or another shape)
    ssim: float  # mean structural similarity of the luma (1 = identical)
    tone: float  # RMS luma difference of 32 px thumbnails, grey levels (brightness, contrast, gamma)
    chroma: float  # RMS Cb/Cr difference of 32 px thumbnails, levels (greyscale, sepia, saturation)
    detail: float  # log ratio of the fine detail (Laplacian RMS), candidate over stored (blur < 0 < sharpen)
    side: int  # short side of the common scale
    # The difference explained as an edit of the stored luma: candidate - stored ~ offset + gain * (stored
    # - mean) + sharpening * Laplacian(stored), least squares over the common scale (see _edit_model).
    offset: float = 0.0  # grey levels (brightness)
    gain: float = 0.0  # relative (contrast, brightness as a multiplier)
    sharpening: float = 0.0  # per unit of Laplacian (blur < 0 < sharpen)
    residual: float = 0.0  # RMS of what the edit model leaves, grey levels (codec noise, misalignment)
    residual_coarse: float = 0.0  # the same residual averaged over 4 x 4 blocks (codec noise averages out)
    chroma_gain: float = 0.0  # Cb/Cr of the thumbnails: candidate - stored ~ gain * (their mean - 128)
    luma_sd: float = 0.0  # standard deviation of the stored luma (gain * luma_sd: the contrast edit in levels)
    laplacian: float = 0.0  # RMS Laplacian of the stored luma (sharpening * laplacian: the blur in levels)
    # Fine detail on the strongest edges only (the EDGE_SHARE of pixels where the two Laplacians are
    # largest), candidate over stored, log: a blur softens strong edges as much as texture, while JPEG
    # and WebP drop weak texture and keep strong edges (their large coefficients survive quantisation).
    edge_detail: float = 0.0
    # The brightness/contrast part of the edit model fitted again on 4 x 4 block means: resampling and
    # ringing move single pixels along edges (which the pixel-level gain reads as contrast) but keep
    # block means, which a contrast edit does move.
    gain_coarse: float = 0.0
    # Whether one picture is a JPEG shown at its own size (its 8 x 8 blocks on the common scale's grid),
    # and then how far the other picture's DCT coefficients are from quantising to the same values with
    # that JPEG's steps (see _jpeg_consistency): a re-encode or a resize then re-encode of the same
    # pixels quantises to (nearly) the same values; a blur, a sharpening or a tone edit does not.
    jpeg_tested: float = 0.0
    jpeg_mismatch: float = 0.0  # share of the non-zero coefficients that quantise to another value
    jpeg_excess: float = 0.0  # share of all coefficients more than 3/4 of a step away
    # The largest local differences: the 99th percentile of the 8 x 8 block means' difference (less its
    # median) in luma and in chroma, levels. Re-encoding keeps block means; an edit of a few regions
    # (the colour fills of a drawing, a bright area clipped) moves them there, whatever the average says.
    local_luma: float = 0.0
    local_chroma: float = 0.0
    # When both pictures are lossless files (PNG) of the same size, each seen by its own pixels (reduced
    # alike when over the verification box: View.png_size): the share of their pixel values that differ by
    # more than one level (moved_share). A lossless copy keeps every pixel, so any more than
    # UNCHANGED_SHARE is an edit, however slight; None for every other pair.
    lossless_moved: float | None = None
    # When one picture is a lossless file and the other a JPEG of its size seen by its own pixels: how far
    # (grey levels) the 8 x 8 block means of the JPEG's own Y plane are from the lossless picture's, at
    # most, beyond one step of the JPEG's DC quantisation (see _jpeg_blocks_moved); None otherwise.
    jpeg_block_moved: float | None = None
    # When the two differ in size: which of REDUCING_FILTERS reduced the larger (0 = Lanczos, softer after
    # it), and how much closer than Lanczos it came (log of the squared luma differences' ratio, <= 0). A
    # copy made with that filter matches it far better; a slight sharpening only partly undone, less.
    reducing_filter: int = 0
    reducing_filter_gain: float = 0.0

    def keeps_shape(self) -> bool:
        """The two pictures have the same proportions (ASPECT_LIMIT, plus 1.5 pixels of rounding at the
        common scale): beyond it they are never the same picture, whatever the other measures say."""
        return self.aspect <= ASPECT_LIMIT + 1.5 / max(self.side, 1)

    def keeps_pixels(self) -> bool:
        """What a lossless picture's copy of its size must keep (no score overrides this; every other pair
        is left to the score): another lossless file has its pixels, to within UNCHANGED_SHARE; a JPEG
        has its 8 x 8 block means, to within JPEG_BLOCK_LIMIT beyond the JPEG's own quantisation."""
        if self.lossless_moved is not None and self.lossless_moved > UNCHANGED_SHARE:
            return False
        return self.jpeg_block_moved is None or self.jpeg_block_moved <= JPEG_BLOCK_LIMIT

    def may_be_same(self) -> bool:
        """The hard limits, before any score: the same shape, and a lossless picture's pixels kept."""
        return self.keeps_shape() and self.keeps_pixels()


def _block_means(x: np.ndarray, size: int) -> np.ndarray:
    """Means of the size x size blocks that tile ``x`` (a ragged edge is left out). Summed one axis at a
    time over contiguous rows: several times faster than a mean over two strided axes."""
    h, w = (x.shape[0] // size) * size, (x.shape[1] // size) * size
    rows = x[:h, :w].reshape(h // size, size, w).sum(axis=1)
    return rows.reshape(h // size, w // size, size).sum(axis=2) / (size * size)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over SSIM_WINDOW-square blocks (non-overlapping: a tenth of the cost of sliding)."""
    size = max(1, min(SSIM_WINDOW, *a.shape))
    ma, mb = _block_means(a, size), _block_means(b, size)
    va = _block_means(a * a, size) - ma * ma
    vb = _block_means(b * b, size) - mb * mb
    cov = _block_means(a * b, size) - ma * mb
    index = ((2 * ma * mb + _SSIM_C1) * (2 * cov + _SSIM_C2)) / ((ma * ma + mb * mb + _SSIM_C1) * (va + vb + _SSIM_C2))
    return float(index.mean())


EDGE_SHARE = 0.1


def _laplacian(y: np.ndarray) -> np.ndarray:
    return 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)))


def _edge_detail(lap_s: np.ndarray, lap_c: np.ndarray) -> float:
    """Log ratio of the Laplacian RMS, candidate over stored, on the pixels where the two Laplacians are
    largest together (the same pixels for both, so swapping the pictures only changes the sign)."""
    ls, lc = lap_s.ravel(), lap_c.ravel()
    strength = np.abs(ls) + np.abs(lc)
    keep = max(1, int(strength.size * EDGE_SHARE))
    strongest = np.argpartition(strength, strength.size - keep)[-keep:]
    return float(np.log((_rms(lc[strongest]) + DETAIL_FLOOR) / (_rms(ls[strongest]) + DETAIL_FLOOR)))


def _coarse_gain(ys: np.ndarray, yc: np.ndarray) -> float:
    """Least-squares gain of the 4 x 4 block means' difference on the stored block means (centred)."""
    if min(ys.shape) < 8:
        return 0.0
    s, c = _block_means(ys, 4), _block_means(yc, 4)
    centred = (s - s.mean()).ravel()
    d = (c - s).ravel()
    return float(np.dot(centred, d - d.mean()) / (np.dot(centred, centred) + centred.size))


_DCT8 = np.array(
    [[np.sqrt((1 if k == 0 else 2) / 8) * np.cos(np.pi * (2 * n + 1) * k / 16) for n in range(8)] for k in range(8)],
    dtype=np.float32,
)


def _by_rows(rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``rows @ matrix`` in slices of 1,024 rows: as fast, and each product small enough that BLAS does
    it on this thread (one large product starts a thread on the other CPU, which then spins)."""
    out = np.empty((len(rows), matrix.shape[1]), np.float32)
    for start in range(0, len(rows), 1024):
        np.matmul(rows[start : start + 1024], matrix, out=out[start : start + 1024])
    return out


def _dct_blocks(y: np.ndarray) -> np.ndarray:
    """The 8 x 8 block DCT of a luma plane as JPEG computes it (level-shifted, orthonormal), as an array
    of blocks (rows of blocks, blocks, 8, 8): each block's rows, then its columns, all blocks at once."""
    h, w = (y.shape[0] // 8) * 8, (y.shape[1] // 8) * 8
    blocks = (y[:h, :w].astype(np.float32) - 128).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    across = _by_rows(blocks.reshape(-1, 8), _DCT8.T)
    down = _by_rows(across.reshape(-1, 8, 8).transpose(0, 2, 1).reshape(-1, 8), _DCT8.T)
    return down.reshape(h // 8, w // 8, 8, 8).transpose(0, 1, 3, 2)


def _jpeg_consistency(jpeg: np.ndarray, table: tuple[int, ...], other: np.ndarray) -> tuple[float, float]:
    """(mismatch, excess) of ``other``'s coefficients quantised with the JPEG's ``table``, against the
    JPEG's own coefficients (which its encoder quantised with that table)."""
    if min(jpeg.shape) < 8:
        return 0.0, 0.0
    own, theirs = _dct_blocks(jpeg), _dct_blocks(other)
    steps = np.asarray(table, np.float32).reshape(8, 8)
    mine, quantised = np.round(own / steps), np.round(theirs / steps)
    nonzero = (mine != 0) | (quantised != 0)
    mismatch = float(np.mean(mine[nonzero] != quantised[nonzero])) if nonzero.any() else 0.0
    return mismatch, float(np.mean(np.abs(theirs - own) > 0.75 * steps))


LOCAL_BLOCK = 8


def _local_difference(stored: np.ndarray, candidate: np.ndarray) -> float:
    """99th percentile of the block means' absolute difference from its median (one channel)."""
    size = max(1, min(LOCAL_BLOCK, *stored.shape))
    d = _block_means(candidate - stored, size)
    return float(np.percentile(np.abs(d - np.median(d)), 99))


def _edit_model(ys: np.ndarray, yc: np.ndarray, lap_s: np.ndarray) -> tuple[float, ...]:
    """(offset, gain, sharpening, residual, residual_coarse, luma_sd, laplacian) of the luma difference
    ``yc - ys``: a brightness or contrast edit moves it along the stored luma, a blur or a sharpening
    along its Laplacian; re-encoding noise follows neither and is left in the residual, mostly at fine
    scale. Least squares through the 3 x 3 normal equations (dot products: no N x 3 matrix). ``lap_s``
    is the stored luma's Laplacian."""
    s = ys[1:-1, 1:-1]
    lap = lap_s.ravel()
    d = (yc[1:-1, 1:-1] - s).ravel()
    centred = (s - s.mean()).ravel()
    n = d.size
    columns = (centred, lap)
    normal = np.empty((3, 3))
    normal[0, 0] = n
    normal[0, 1:] = normal[1:, 0] = [float(np.sum(column, dtype=np.float64)) for column in columns]
    for i, a in enumerate(columns, start=1):
        for j, b in enumerate(columns, start=1):
            normal[i, j] = float(np.dot(a, b))
    # A small ridge keeps a flat picture (no contrast, no Laplacian) from inventing large coefficients.
    normal[1, 1] += n
    normal[2, 2] += n
    right = np.array([float(np.sum(d, dtype=np.float64)), float(np.dot(centred, d)), float(np.dot(lap, d))])
    offset, gain, sharpening = np.linalg.solve(normal, right)
    residual = (d - np.float32(offset) - np.float32(gain) * centred - np.float32(sharpening) * lap).reshape(s.shape)
    coarse = _block_means(residual, 4) if min(s.shape) >= 4 else residual
    return (
        float(offset),
        float(gain),
        float(sharpening),
        float(np.sqrt(np.dot(residual.ravel(), residual.ravel()) / n)),
        float(np.sqrt(np.mean(coarse * coarse))),
        float(np.sqrt(np.dot(centred, centred) / n)),
        float(np.sqrt(np.dot(lap, lap) / n)),
    )


def _chroma_gain(ts: np.ndarray, tc: np.ndarray) -> float:
    """The Cb/Cr difference (candidate - stored) against the two pictures' mean chroma: symmetric, so a
    greyscale copy is -2 when the colour picture is stored and +2 the other way round (against the
    stored chroma alone, a stored greyscale picture would give 0), saturation +30% about +0.26."""
    x = (ts[..., 1:].astype(np.float64) + tc[..., 1:]) / 2 - 128
    d = tc[..., 1:].astype(np.float64) - ts[..., 1:]
    return float(np.sum(x * d) / (np.sum(x * x) + 4.0 * x.size))  # two grey pictures (x ~ 0) give ~0


def _ycbcr(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("YCbCr"), np.float32)


class View(NamedTuple):
    """A picture as verification sees it: pixels, the JPEG luma quantisation table and the file's bytes
    when the pixels are a JPEG's own, at its own size (see VerifiedImage.luma_table), and whether they
    are a lossless file's own pixels (VerifiedImage.lossless).

    ``png_size`` is the file's size when the view was made from a PNG's own numbers by `view_of` alone
    (reduced to fit the box, or not): the same pixels always make the same view, so two such views of
    one file size have the same pixels exactly when the files do (to within the reduction's rounding).
    None for a rendition, a JPEG, or colours converted by a profile."""

    image: Image.Image
    luma_table: tuple[int, ...] | None = None
    lossless: bool = False
    jpeg: bytes | None = None
    png_size: tuple[int, int] | None = None


# A picture is unaltered when at most this share of its 8-bit values moves by more than one level (the
# rounding of one step): the product's "without alteration", read by the pixels. Two lossless files of
# one size are the same picture only within it (Comparison.keeps_pixels); the labelled set's rule for
# an edit that changes nothing (everhash/testing/edits.py, unchanged_edits) is this one.
UNCHANGED_SHARE = 0.001


def moved_share(a: np.ndarray, b: np.ndarray) -> float:
    """The share of the values of two 8-bit pixel arrays of one shape that differ by more than one level."""
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16)) > 1))


# A JPEG made from a lossless picture keeps each 8 x 8 block's mean luma to within half a step of its DC
# quantisation (step / 16 levels), the encoder's RGB to Y rounding and the decoder's (about 1.5 levels in
# all on the labelled set's train half: 1,156 JPEG copies of PNGs of their size, q95 to q30). Allowing a
# whole DC step (step / 8, as an encoder that rounds DC to a neighbouring value may) and this many levels
# more, no copy there was refused, while 1,224 of 1,632 edits were (brightness, contrast, gamma, blur and
# sharpening move block means; greyscale and most saturation edits keep luma, and stay with the score).
JPEG_BLOCK_LIMIT = 2.0


def _jpeg_blocks_moved(view: View, other: np.ndarray) -> float | None:
    """How far the most-moved 8 x 8 block mean of the JPEG ``view``'s own Y plane is from the same block
    of ``other`` (the luma of a lossless picture of its size), beyond one DC step; blocks the decoder
    clipped (a value at 0 or 255) are left out. None when the Y plane cannot be read."""
    plane = jpeg_luma(view.jpeg) if view.jpeg is not None and view.luma_table is not None else None
    if plane is None or plane.size != view.image.size or min(plane.size) < 8:
        return None
    y = np.asarray(plane, np.float32)
    h, w = (y.shape[0] // 8) * 8, (y.shape[1] // 8) * 8
    blocks = y[:h, :w].reshape(h // 8, 8, w // 8, 8)
    kept = (blocks.min(axis=(1, 3)) > 0) & (blocks.max(axis=(1, 3)) < 255)
    if not kept.any():
        return None
    moved = np.abs(_block_means(y, 8) - _block_means(other, 8))[kept]
    return float(moved.max() - view.luma_table[0] / 8)


# Platforms reduce pictures with different filters (Lanczos, bicubic, bilinear, box...): a bilinear copy is
# softer than a Lanczos one, as if blurred. The larger picture is reduced with each, and compared as the
# one that comes closest to the smaller picture (the least squared luma difference). Only Lanczos and
# softer filters are tried: no filter sharpens a blurred picture back, so a blur of the larger picture
# still shows against a sharp copy. The price: a soft filter can undo a slight sharpening of the larger
# picture (docs/dedupe.md, "Other filters").
REDUCING_FILTERS = (
    Image.Resampling.LANCZOS,
    Image.Resampling.BICUBIC,
    Image.Resampling.HAMMING,
    Image.Resampling.BILINEAR,
    Image.Resampling.BOX,
)


def _reduced_like(large: Image.Image, small: Image.Image) -> tuple[Image.Image, int, float]:
    """``large`` reduced to ``small``'s size with the filter of REDUCING_FILTERS that comes closest to it
    (chosen on the luma alone, a third of the work; the colour picture is then reduced once), with that
    filter's position and the log ratio of its squared luma difference to Lanczos' (one level squared
    per pixel added to both, so that two near matches do not make a large ratio)."""
    target, grey = np.asarray(small.convert("L"), np.float32), large.convert("L")
    errors = []
    for resample in REDUCING_FILTERS:
        difference = np.asarray(grey.resize(small.size, resample, reducing_gap=3.0), np.float32) - target
        errors.append(float(np.einsum("ij,ij->", difference, difference)))
    best = int(np.argmin(errors))
    gain = float(np.log((errors[best] + target.size) / (errors[0] + target.size)))
    return large.resize(small.size, REDUCING_FILTERS[best], reducing_gap=3.0), best, gain


def compare(stored_view: View, arriving_view: View) -> Comparison:
    """Compare two decoded pictures at a common scale: the larger reduced to the smaller's size."""
    stored, candidate = stored_view.image.convert("RGB"), arriving_view.image.convert("RGB")
    lossless_moved = None
    if stored_view.png_size is not None and stored_view.png_size == arriving_view.png_size:
        lossless_moved = moved_share(np.asarray(stored), np.asarray(candidate))
    small, large = sorted((stored, candidate), key=lambda image: image.width * image.height)
    scale_x, scale_y = small.width / large.width, small.height / large.height
    aspect = abs(scale_x - scale_y) / max(scale_x, scale_y)
    reducing_filter, reducing_filter_gain = 0, 0.0
    if large.size != small.size:
        large, reducing_filter, reducing_filter_gain = _reduced_like(large, small)
    s, c = (small, large) if small is stored else (large, small)
    ys, yc = _ycbcr(s), _ycbcr(c)
    luma_s, luma_c = ys[..., 0], yc[..., 0]
    # Tone and colour on tiny thumbnails: insensitive to noise, detail and a pixel of misalignment.
    # Thumbnails at most a quarter of the common scale, so each value averages 16 pixels or more.
    side = max(1, min(TONE_SIDE, min(s.size) // 4))
    shrink = side / min(s.size)
    box = (max(1, round(s.width * shrink)), max(1, round(s.height * shrink)))
    ts = _ycbcr(s.resize(box, Image.Resampling.BOX))
    tc = _ycbcr(c.resize(box, Image.Resampling.BOX))
    difference = ts - tc
    tone = float(np.sqrt(np.mean(difference[..., 0] ** 2)))
    chroma = float(np.sqrt(np.mean(difference[..., 1:] ** 2)))
    if min(luma_s.shape) >= 3:
        lap_s, lap_c = _laplacian(luma_s), _laplacian(luma_c)
        detail = float(np.log((_rms(lap_c) + DETAIL_FLOOR) / (_rms(lap_s) + DETAIL_FLOOR)))
        offset, gain, sharpening, residual, coarse, luma_sd, laplacian = _edit_model(luma_s, luma_c, lap_s)
        edge_detail = _edge_detail(lap_s, lap_c)
    else:  # a picture under 3 pixels: no Laplacian (the aspect and tone measures still apply)
        detail, edge_detail = 0.0, 0.0
        offset, gain, sharpening, residual, coarse, luma_sd, laplacian = (0.0,) * 7
    # The JPEG test needs a JPEG at its own size: the smaller picture (never resampled), or either one
    # when both are the same size (then the more consistent of the two).
    tested = [
        _jpeg_consistency(own, view.luma_table, other)
        for view, own, other in ((stored_view, luma_s, luma_c), (arriving_view, luma_c, luma_s))
        if view.luma_table is not None and view.image.size == small.size
    ]
    mismatch, excess = min(tested) if tested else (0.0, 0.0)
    # A lossless picture and a JPEG of its size: the JPEG's own block means must be the lossless one's.
    jpeg_block_moved = None
    if stored.size == candidate.size:
        for jpeg_view, other_view, other_luma in (
            (stored_view, arriving_view, luma_c),
            (arriving_view, stored_view, luma_s),
        ):
            if other_view.lossless and jpeg_view.jpeg is not None:
                jpeg_block_moved = _jpeg_blocks_moved(jpeg_view, other_luma)
    return Comparison(
        aspect=aspect,
        ssim=_ssim(luma_s, luma_c),
        tone=tone,
        chroma=chroma,
        detail=detail,
        side=min(s.size),
        offset=offset,
        gain=gain,
        sharpening=sharpening,
        residual=residual,
        residual_coarse=coarse,
        chroma_gain=_chroma_gain(ts, tc),
        luma_sd=luma_sd,
        laplacian=laplacian,
        edge_detail=edge_detail,
        gain_coarse=_coarse_gain(luma_s, luma_c),
        jpeg_tested=float(bool(tested)),
        jpeg_mismatch=mismatch,
        jpeg_excess=excess,
        local_luma=_local_difference(luma_s, luma_c),
        local_chroma=max(_local_difference(ys[..., k], yc[..., k]) for k in (1, 2)),
        lossless_moved=lossless_moved,
        reducing_filter=reducing_filter,
        reducing_filter_gain=reducing_filter_gain,
        jpeg_block_moved=jpeg_block_moved,
    )


# The verification score: gradient-boosted decision trees over the measures below, fitted on the train
# half of the labelled set only (python -m bench.dedupe_eval --fit, docs/dedupe.md) and kept in
# dedupe_model.json next to this file. The score is the trees' summed log-odds; a candidate is the same
# picture when it is at least VERIFY_SCORE_MIN, chosen by cross-validation inside the train half.
ASPECT_LIMIT = 0.01  # plus 1.5 pixels of rounding at the common scale; beyond it, never the same
VERIFY_SCORE_MIN = 0.0
MODEL_PATH = Path(__file__).with_name("dedupe_model.json")

# The trees' inputs, in order (the model file names them, so a model fitted on other inputs is refused).
FEATURES = (
    "ssim",  # log(1 - SSIM)
    "tone",
    "chroma",
    "detail",
    "side",  # log of the common scale's short side (small copies are noisier)
    "residual",
    "residual_coarse",
    "gain",
    "sharpening",
    "sharpening_levels",  # sharpening x the stored Laplacian RMS: the blur or sharpening in grey levels
    "contrast_levels",  # gain x the stored luma's deviation: the contrast edit in grey levels
    "offset",
    "chroma_gain",
    "luma_sd",
    "laplacian",
    "colour_distance",  # log of the signature's colour RMS
    "structure_distance",  # the signature's structure bits (0 for two flat pictures: noise there)
    "detail_distance",
    "flat",
    "sharpening_over_residual",  # log ratios: an edit stands out of the codec noise
    "contrast_over_coarse",
    "offset_over_coarse",
    "coarse_share",  # coarse residual over residual: misalignment and content stay coarse, noise is fine
    "edge_detail",
    "gain_coarse",
    "jpeg_tested",
    "jpeg_mismatch",  # -1 when not tested
    "jpeg_excess",  # -1 when not tested
    "local_luma",
    "local_chroma",
    "local_luma_over_residual",
    "local_chroma_over_chroma",
    "reducing_filter",  # which of REDUCING_FILTERS reduced the larger picture (0: Lanczos, or one size)
    "reducing_filter_gain",  # how much closer than Lanczos it came (log ratio, 0 when Lanczos or one size)
)


def _log(value: float, floor: float = 0.1) -> float:
    return float(np.log(abs(value) + floor))


def verification_features(d: Distances, c: Comparison) -> np.ndarray:
    """The model's inputs (FEATURES, docs/dedupe.md): the comparison's measures, the edit model's
    coefficients in grey levels and against the noise re-encoding leaves, and the signature distances."""
    sharpen, contrast = c.sharpening * c.laplacian, c.gain * c.luma_sd
    tested = bool(c.jpeg_tested)
    return np.array(
        [
            np.log(1.0001 - c.ssim),
            c.tone,
            c.chroma,
            c.detail,
            np.log(max(c.side, 1)),
            c.residual,
            c.residual_coarse,
            c.gain,
            c.sharpening,
            sharpen,
            contrast,
            c.offset,
            c.chroma_gain,
            c.luma_sd,
            c.laplacian,
            np.log(d.histogram_rms + 1e-4),
            0 if d.flat else d.structure,
            d.detail,
            float(d.flat),
            _log(sharpen) - _log(c.residual),
            _log(contrast) - _log(c.residual_coarse),
            _log(c.offset) - _log(c.residual_coarse),
            c.residual_coarse / (c.residual + 0.1),
            c.edge_detail,
            c.gain_coarse,
            float(tested),
            c.jpeg_mismatch if tested else -1.0,
            c.jpeg_excess if tested else -1.0,
            c.local_luma,
            c.local_chroma,
            c.local_luma / (c.residual + 0.5),
            c.local_chroma / (c.chroma + 0.2),
            float(c.reducing_filter),
            c.reducing_filter_gain,
        ],
        dtype=np.float64,
    )


# A tree is a leaf (its log-odds) or [feature index, threshold, subtree if <=, subtree if >].
Tree = float | list


@cache
def _model() -> tuple[Tree, ...]:
    model = json.loads(MODEL_PATH.read_text())
    if tuple(model["features"]) != FEATURES:
        raise ValueError(f"{MODEL_PATH.name} was fitted on other features: fit it again (docs/dedupe.md).")
    return tuple(model["trees"])


def _tree_value(tree: Tree, x: np.ndarray) -> float:
    while isinstance(tree, list):
        tree = tree[2] if x[tree[0]] <= tree[1] else tree[3]
    return tree


def verification_score(d: Distances, c: Comparison) -> float:
    """The trees' summed log-odds that the two pictures are the same."""
    x = verification_features(d, c)
    return float(sum(_tree_value(tree, x) for tree in _model()))


def _is_same(d: Distances, c: Comparison) -> bool:
    return c.may_be_same() and verification_score(d, c) >= VERIFY_SCORE_MIN


class Decision(NamedTuple):
    same: bool
    distances: Distances | None  # the signature filter's measures (None when the bytes are equal)
    comparison: Comparison | None  # None when the filter rejected the pair

    def describe(self) -> str:
        parts = []
        if self.distances is not None:
            d = self.distances
            parts.append(f"filter: colour {d.histogram_rms:.4f}, structure {d.structure}, detail {d.detail:.3f}")
        if self.comparison is not None:
            c = self.comparison
            parts.append(
                f"verify at {c.side} px: aspect {c.aspect:.4f}, ssim {c.ssim:.3f}, tone {c.tone:.2f},"
                f" chroma {c.chroma:.2f}, detail {c.detail:+.3f}"
                + (f", two PNGs: {c.lossless_moved:.2%} of the values moved" if c.lossless_moved is not None else "")
                + (
                    f", PNG vs JPEG: a block mean {c.jpeg_block_moved:+.1f} levels"
                    if c.jpeg_block_moved is not None
                    else ""
                )
            )
        return "; ".join(parts) or "same bytes"


class Examined:
    """What dedupe needs of one downloaded picture, computed once: its content hash, signature, the view
    it is verified with as a candidate, and (lazily) the stored rendition it is verified against later."""

    def __init__(self, verified: VerifiedImage, *, content_hash: str) -> None:
        self.content_hash = content_hash
        self.signature = compute_signature(verified.image)
        self._verified: VerifiedImage | None = verified
        self._view: View | None = None
        self._stored: bytes | None = None  # the JPEG, as stored (decoded on each use: it is smaller)
        self._fits_view = fits_view(verified.width, verified.height)
        self._numbers: Examined | None = None

    @property
    def numbers(self) -> Examined | None:
        """The picture read by its file's own numbers, when its colour profile changed its colours (None
        otherwise): how a copy whose platform dropped the profile without converting shows it. Made on
        first use (a signature more), only for such pictures."""
        if self._numbers is None and self._verified is not None and self._verified.unconverted is not None:
            self._numbers = Examined(self._verified.unconverted, content_hash=self.content_hash)
        return self._numbers

    @property
    def view(self) -> View:
        """The picture as it is verified when it arrives (made only when a stored picture passes the filter)."""
        if self._view is None:
            self._view = view_of(self._image())
        return self._view

    def _image(self) -> VerifiedImage:
        if self._verified is None:
            raise RuntimeError("The decoded image was dropped by forget_image().")
        return self._verified

    def stored_view(self) -> View:
        """The picture as ingest verifies it once stored (pictures.services.StoredPicture): a picture that
        fits the verification rendition by its own pixels (the original's, with its JPEG table), a
        larger one by its VERIFY_RENDITION rendition."""
        if self._fits_view:
            return self.view
        if self._stored is None:
            self._stored = make_renditions(self._image())[VERIFY_RENDITION][0]
        return decode_view(self._stored)

    def stored_png(self, size: tuple[int, int]) -> View | None:
        """The picture once stored, seen by its original's own pixels when it is a PNG of ``size``
        (pictures.services.StoredPicture.stored_png); None otherwise."""
        return self.view if self.view.png_size == size else None

    def forget_image(self) -> None:
        """Keep only the two views (made now, of each reading) and drop the decoded images."""
        self.stored_view()
        _ = self.view
        if self.numbers is not None:
            self.numbers.forget_image()
        self._verified = None


def fits_view(width: int, height: int) -> bool:
    """Whether a picture of this size is verified at its own size (it fits the verification rendition)."""
    spec = RENDITIONS[VERIFY_RENDITION]
    return width <= spec.width and height <= spec.height


def view_of(verified: VerifiedImage) -> View:
    """How verification sees a picture, stored or arriving: reduced to fit the verification rendition
    (nothing compares at a larger scale); one that already fits keeps its JPEG table, if it has one
    (VerifiedImage.luma_table is only set for a JPEG's own pixels)."""
    image = verified.image
    png_size = (verified.width, verified.height) if verified.format == "PNG" and not verified.colour_profile else None
    if fits_view(image.width, image.height):
        return View(image, verified.luma_table, verified.lossless, verified.jpeg, png_size)
    return View(render(image, RENDITIONS[VERIFY_RENDITION]), png_size=png_size)


def decode_view(jpeg: bytes) -> View:
    """A stored rendition's pixels (renditions are our own JPEGs, so a plain decode)."""
    with Image.open(BytesIO(jpeg), formats=("JPEG",)) as image:
        image.load()
        return View(image.convert("RGB"))


class Stored(Protocol):
    """A stored picture as verification reads it: an `Examined` for one in memory (`decide`),
    pictures.services.StoredPicture for one in the album's storage (ingest)."""

    def stored_view(self) -> View | None:
        """How it is verified against (Examined.stored_view); None when it cannot be read."""

    @property
    def numbers(self) -> Examined | None:
        """It read by its file's own numbers, when its colour profile changed its colours (Examined.numbers)."""

    def stored_png(self, size: tuple[int, int]) -> View | None:
        """Its view made from its original when that is a PNG of ``size`` (Examined.stored_png)."""


def find_duplicate(
    *, index: SignatureIndex, candidate: Examined, stored: Callable[[int], Stored]
) -> tuple[int | None, Decision | None]:
    """The stored duplicate of a candidate: signature filter over the album, then verification of each
    candidate it passes (closest first) against its stored rendition (``stored``: the picture of an id
    the index holds). Returns (picture id or None, the last decision made).

    A picture whose colour profile changed its colours is also compared by its file's numbers, since
    some platforms drop a profile without converting (X recompressing a PNG): when the stored picture is
    such a one (`Stored.numbers`, None for any other) and the arriving one is not, or the reverse (a
    second pass of the filter with the arriving picture's numbers).

    Two PNGs of one size are the same picture only with the same pixels (Comparison.keeps_pixels). A
    stored PNG over the verification box is seen by its rendition, whose JPEG noise hides the few pixels
    a slight edit moves: when the score finds an arriving PNG the same as such a picture, the match is
    confirmed on the views of both originals (`Stored.stored_png`). Only then is the original read.
    """
    found, decision = _find(index, candidate, stored, by_stored_numbers=candidate.numbers is None)
    if found is None and candidate.numbers is not None:
        found, by_numbers = _find(index, candidate.numbers, stored, by_stored_numbers=False)
        if found is not None:
            return found, by_numbers
    return found, decision


def _find(
    index: SignatureIndex, candidate: Examined, stored: Callable[[int], Stored], *, by_stored_numbers: bool
) -> tuple[int | None, Decision | None]:
    """One pass of find_duplicate: ``candidate`` as it is read, against each stored picture as it is seen
    and (``by_stored_numbers``) by its numbers."""
    decision = None
    for picture_id, measured in index.candidates(candidate.signature):
        picture = stored(picture_id)
        view_of_stored = picture.stored_view()
        if view_of_stored is None:  # its rendition is gone: it cannot be verified, so it is not merged
            continue
        comparison = compare(view_of_stored, candidate.view)
        decision = Decision(_is_same(measured, comparison), measured, comparison)
        png_size = candidate.view.png_size
        if (
            decision.same
            and png_size is not None
            and view_of_stored.png_size is None
            and (original := picture.stored_png(png_size)) is not None
        ):
            comparison = compare(original, candidate.view)
            decision = Decision(_is_same(measured, comparison), measured, comparison)
        if decision.same:
            return picture_id, decision
        if by_stored_numbers and (numbers := picture.numbers) is not None:
            by_numbers = distances(numbers.signature, candidate.signature)
            if by_numbers.passes_filter():
                comparison = compare(numbers.stored_view(), candidate.view)
                if _is_same(by_numbers, comparison):
                    return picture_id, Decision(True, by_numbers, comparison)
    return None, decision


def examine(data: bytes) -> Examined:
    """Decode untrusted bytes as ingest does (raises ImageRejected) and compute what dedupe needs."""
    verified = open_for_renditions(data, max_pixels=settings.EVERHASH_MAX_IMAGE_PIXELS)
    return Examined(verified, content_hash=hashlib.sha256(data).hexdigest())


def decide(stored: Examined, candidate: Examined) -> Decision:
    """Whether ``candidate``, arriving in an album that holds ``stored``, is stored or skipped as a duplicate."""
    if stored.content_hash == candidate.content_hash:
        return Decision(True, None, None)
    index = SignatureIndex.from_rows([(1, stored.signature.histogram, stored.signature.structure_hash)])
    _, decision = find_duplicate(index=index, candidate=candidate, stored=lambda _: stored)
    if decision is None:
        return Decision(False, distances(stored.signature, candidate.signature), None)
    return decision


def same_picture(a: bytes, b: bytes) -> bool:
    """Whether ingest skips ``b`` as a duplicate when ``a`` is already in the album: the same decoding,
    signature filter and verification. Raises ImageRejected when either is not a usable image."""
    return decide(examine(a), examine(b)).same
