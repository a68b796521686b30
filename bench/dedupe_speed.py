"""Speed of pictures/dedupe.py: one candidate against an album of 100,000 stored signatures.

    .venv/bin/python -m bench.dedupe_speed            # markdown report on stdout (docs/dedupe.md)

Target (issue 3): under 5 ms per candidate. Reported: median, p99 and maximum of
SignatureIndex.find_duplicate over 200 candidates in four situations, from the usual one (nothing
similar stored) to the worst (every stored row passes the cheap structure prefilter, or every
prefilter), plus loading the rows, add(), and compute_signature on a 12-megapixel photo.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from pictures import dedupe

ROOT = Path(__file__).resolve().parent.parent

COLOURS = 3 * dedupe.COLOUR_BINS
DETAILS = dedupe.HISTOGRAM_LENGTH - COLOURS
HASH_BYTES = dedupe.STRUCTURE_BITS // 8


def random_arrays(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Plausible, unrelated signatures: (count, HISTOGRAM_LENGTH) float32 vectors, (count, 32) hash bytes."""
    colours = rng.dirichlet(np.ones(dedupe.COLOUR_BINS), size=(count, 3)).reshape(count, COLOURS)
    details = rng.uniform(1, 5, size=(count, DETAILS))
    details[rng.random(count) < 0.3, -3:] = np.nan  # smaller pictures lack the finest scales
    vectors = np.hstack([colours, details]).astype(np.float32)
    return vectors, rng.integers(0, 256, size=(count, HASH_BYTES), dtype=np.uint8)


def signatures(vectors: np.ndarray, hashes: np.ndarray) -> list[dedupe.Signature]:
    return [dedupe.Signature(v.tobytes(), h.tobytes().hex()) for v, h in zip(vectors, hashes, strict=True)]


def flip_bits(hashes: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    """Each hash with `bits` random bits flipped (well within the structure threshold)."""
    unpacked = np.unpackbits(hashes, axis=1)
    for row in unpacked:
        row[rng.choice(unpacked.shape[1], bits, replace=False)] ^= 1
    return np.packbits(unpacked, axis=1)


def timings(function: Callable[[], object], repeat: int) -> np.ndarray:
    seconds = np.empty(repeat)
    for i in range(repeat):
        started = time.perf_counter()
        function()
        seconds[i] = time.perf_counter() - started
    return seconds * 1000


def row(label: str, ms: np.ndarray, note: str = "") -> str:
    return f"| {label} | {np.median(ms):.3f} | {np.percentile(ms, 99):.3f} | {ms.max():.3f} | {len(ms)} | {note} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=100_000, help="signatures in the album")
    parser.add_argument("--candidates", type=int, default=200, help="candidates timed per situation")
    args = parser.parse_args()
    n, m = args.stored, args.candidates
    rng = np.random.default_rng(2024)

    vectors, hashes = random_arrays(n, rng)
    rows = [(i, v.tobytes(), h.tobytes().hex()) for i, (v, h) in enumerate(zip(vectors, hashes, strict=True))]
    started = time.perf_counter()
    index = dedupe.SignatureIndex.from_rows(rows)
    load_ms = (time.perf_counter() - started) * 1000

    stored = signatures(vectors, hashes)
    grown = dedupe.SignatureIndex()
    started = time.perf_counter()
    for i, signature in enumerate(stored):
        grown.add(i, signature)
    add_us = (time.perf_counter() - started) / n * 1e6
    assert len(grown) == len(index) == n

    out = [f"## find_duplicate against {n:,} stored signatures ({m} candidates per situation)\n"]
    out.append("| situation | median ms | p99 ms | max ms | candidates | note |")
    out.append("|---|---|---|---|---|---|")

    # 1. The usual case: nothing similar is stored.
    unrelated = signatures(*random_arrays(m, rng))
    it = iter(unrelated)
    ms = timings(lambda: index.find_duplicate(next(it)), m)
    out.append(row("nothing similar stored (the usual case)", ms, "structure prefilter rejects every row"))

    # 2. A duplicate is stored: a stored signature with a few bits flipped and a little colour noise.
    picks = rng.choice(n, m, replace=False)
    noisy = vectors[picks].copy()
    noisy[:, :COLOURS] += rng.normal(0, 0.002, size=(m, COLOURS)).astype(np.float32)
    near = signatures(noisy, flip_bits(hashes[picks], 6, rng))
    it = iter(near)
    answers: list[int | None] = []
    ms = timings(lambda: answers.append(index.find_duplicate(next(it))), m)
    hits = sum(answer == int(pick) for answer, pick in zip(answers, picks, strict=True))
    out.append(row("a re-encoded copy of a stored picture", ms, f"{hits}/{m} found with the right id"))

    # 3. and 4. Worst cases, on an album whose every picture has the same structure hash (within a
    # few bits): every row passes the structure prefilter, then (4) also the colour one.
    base = rng.integers(0, 256, size=HASH_BYTES, dtype=np.uint8)
    same = flip_bits(np.tile(base, (n, 1)), 4, rng)
    crowded = dedupe.SignatureIndex.from_rows(
        (i, v.tobytes(), h.tobytes().hex()) for i, (v, h) in enumerate(zip(vectors, same, strict=True))
    )
    queries = signatures(random_arrays(m, rng)[0], np.tile(base, (m, 1)))
    it = iter(queries)
    ms = timings(lambda: crowded.find_duplicate(next(it)), m)
    out.append(row("every row passes the structure prefilter", ms, "colour RMS over all rows"))

    flat = vectors.copy()
    flat[:, :COLOURS] = 1 / dedupe.COLOUR_BINS
    flat[:, COLOURS:] = 3.0
    worst = dedupe.SignatureIndex.from_rows(
        (i, v.tobytes(), h.tobytes().hex()) for i, (v, h) in enumerate(zip(flat, same, strict=True))
    )
    probe = flat[:1].copy()
    probe[0, COLOURS:] = 4.0  # fails only the last check, so every row goes through all three
    queries = signatures(np.repeat(probe, m, axis=0), np.tile(base, (m, 1)))
    it = iter(queries)
    ms = timings(lambda: worst.find_duplicate(next(it)), m)
    out.append(row("every row passes structure and colour", ms, "all three measures over all rows"))

    out.append(f"\nLoading {n:,} rows with `SignatureIndex.from_rows`: {load_ms:.0f} ms.")
    out.append(f"`SignatureIndex.add`, {n:,} times from an empty index: {add_us:.1f} µs per call on average.\n")

    out.append("## compute_signature on a 12-megapixel photo (4000 x 3000, decoded RGB)\n")
    out.append("| image | median ms | p99 ms | max ms | runs | note |")
    out.append("|---|---|---|---|---|---|")
    with Image.open(ROOT / "tweets" / "sample_data" / "photos" / "astronaut.png") as source:
        large = source.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    grain = rng.integers(-24, 25, size=(3000, 4000, 3), dtype=np.int16)
    grainy = Image.fromarray(np.clip(np.asarray(large, np.int16) + grain, 0, 255).astype(np.uint8))
    for label, image in (("astronaut scaled up", large), ("the same with sensor-like grain", grainy)):
        ms = timings(lambda image=image: dedupe.compute_signature(image), 20)
        out.append(row(label, ms))
    out.append(
        f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, load average"
        f" {os.getloadavg()[0]:.2f} at the end; Python {platform.python_version()}, numpy {np.__version__},"
        f" Pillow {Image.__version__}."
    )
    print("\n".join(out))


if __name__ == "__main__":
    main()
