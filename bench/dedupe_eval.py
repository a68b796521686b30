"""Precision and recall of `pictures.dedupe.same_picture` on a labelled set, split by source picture.

    .venv/bin/python -m bench.dedupe_eval              # markdown report on stdout (docs/dedupe.md)
    .venv/bin/python -m bench.dedupe_eval --half test [--reversed]   # the held-out half (both orders)
    .venv/bin/python -m bench.dedupe_eval --quick      # a few sources only (a smoke run)
    .venv/bin/python -m bench.dedupe_eval --dump F     # every pair's measures, to fit on (--fit F)
    .venv/bin/python -m bench.dedupe_eval --fit TRAIN TEST [--write-model]   # fit on TRAIN's train half
    .venv/bin/python -m bench.dedupe_eval --visibility   # how far small edits move a picture at a copy's scale

The sources: the nine photos of tweets/sample_data/photos/ (public domain or CC0, see SOURCES.md there)
plus pictures generated here (CC0, made by this file with a fixed seed): text pages, greyscale scans,
line drawings, charts, flat and low-detail pictures, noisy pictures, microscope-like cells, and
"stereo" pairs (two shots of one scene a few pixels apart: different photos that look alike).

Each source is edited with the shared catalogue (everhash/testing/edits.py): copies a platform makes
(re-encodes, WebP, PNG, resizes, chains of them) and edits a person makes (filters, crops, mirror,
rotations, blur, sharpening). Pairs, all labelled by the catalogue (same changes = same photo):
original vs each copy and each edit; every copy vs every other copy; each edit vs several copies; an
edit re-encoded vs that edit (a duplicate) and vs other edits; every two sources in the same half.

The split: sources alternate between a "train" half (where the thresholds of pictures/dedupe.py were
chosen) and a "test" half (reported, never tuned on); each kind of generated picture has two
instances in each half, and five more in the train half only (more to fit on; the test half stays
the one of the earlier rounds). Every pair is decided by the very code ingest runs (`same_picture` does the
same steps on bytes; this file only caches the per-image work).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvips
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from everhash.testing import edits
from pictures import dedupe

ROOT = Path(__file__).resolve().parent.parent

PHOTOS_DIR = ROOT / "tweets" / "sample_data" / "photos"

# Copies a platform makes of a photo (each the same photo).
COPIES = [
    "jpeg-q95",
    "jpeg-q70",
    "jpeg-q50",
    "jpeg-q30",
    "webp-q90",
    "webp-q50",
    "png",
    "resize-75",
    "resize-50",
    "resize-25",
    "resize-12",
    "resize-50+webp-q75",
    "resize-25+png",
    "jpeg-q70+resize-50",
]
# Copies resized with softer filters than Lanczos, as other platforms make them. Verification reduces the
# larger picture with the filter that matches the smaller best (dedupe.REDUCING_FILTERS), so such a copy
# is paired with every larger picture. Not with a picture of its size or smaller: there the soft copy is
# the one reduced (or neither is), it looks blurred against the other, and a copy that looks blurred and
# a blur are the same pixels: such pairs would teach the trees to merge blurs (docs/dedupe.md).
SOFT_COPIES = [
    "resize-50-bilinear+jpeg-q85",
    "resize-25-box+jpeg-q85",
    "resize-12-bicubic+jpeg-q85",
    "resize-12-bilinear+jpeg-q85",
]
COPIES += SOFT_COPIES


def _steps(chain: str) -> list[edits.Edit]:
    """A chain's steps ("original" has none)."""
    return [] if chain == "original" else edits.steps(chain)


def _scale(chain: str) -> float:
    """The size of a chain's picture, as a share of the original's (its resize steps)."""
    scale = 1.0
    for step in _steps(chain):
        if step.name.startswith("resize-"):
            scale *= int(step.name.split("-")[1]) / 100
    return scale


def _soft_against_smaller(a: str, b: str) -> bool:
    return any(c in SOFT_COPIES and _scale(other) <= _scale(c) for c, other in ((a, b), (b, a)))


# Edits a person makes (each a different photo).
EDITS = [
    "greyscale",
    "sepia",
    "brightness+30",
    "brightness+10",
    "brightness-30",
    "contrast+30",
    "contrast+10",
    "contrast-30",
    "saturation+30",
    "gamma-0.8",
    "blur-r1",
    "blur-r2",
    "blur-r3",
    "sharpen",
    "sharpen-r2",
    "sharpen-soft",
    "invert",
    "mirror",
    "rotate-90",
    "rotate180",
    "rotate-3",
    "crop-centre-80",
    "crop-corner-80",
    "crop-centre-95",
]
# Each edit is compared with these copies of the original (an edit is never the copy of another copy).
EDIT_VS_COPIES = ["jpeg-q50", "resize-50", "resize-12", "resize-50-bilinear+jpeg-q85"]
# Edited copies that a platform then re-encoded: a duplicate of the edit, distinct from the rest.
EDITED_COPIES = [
    "blur-r2+jpeg-q70",
    "sharpen-r2+resize-50",
    "greyscale+webp-q75",
    "mirror+resize-25",
    "crop-centre-80+jpeg-q50",
    "brightness+30+resize-50",
    "sepia+png",
]


# --- Generated sources (CC0: made here) ------------------------------------------------------------


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)  # Pillow's bundled font: the same on every machine


_WORDS = [
    "the",
    "album",
    "keeps",
    "every",
    "photo",
    "once",
    "platforms",
    "recompress",
    "uploads",
    "resize",
    "them",
    "and",
    "strip",
    "their",
    "metadata",
    "a",
    "filter",
    "a",
    "crop",
    "a",
    "mirror",
    "image",
    "or",
    "a",
    "rotation",
    "makes",
    "another",
    "picture",
    "which",
    "the",
    "album",
    "keeps",
    "too",
]


def text_page(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A printed page: black text on white, near-binary."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    line = max(12, size[1] // 40)
    font = _font(line - 3)
    y = line * 2
    while y < size[1] - 2 * line:
        words = " ".join(rng.choice(_WORDS, size=int(rng.integers(6, 14))))
        draw.text((line * 2, y), words, fill=0, font=font)
        y += line + int(rng.integers(0, 3))
    return image


def scan(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A greyscale scan of a page: tinted paper, uneven light, a slight skew, sensor noise."""
    page = text_page(rng, size).rotate(float(rng.uniform(-1.5, 1.5)), Image.Resampling.BICUBIC, fillcolor=255)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    light = 0.85 + 0.1 * np.sin(x / size[0] * 2.5 + rng.uniform(0, 3)) * np.cos(y / size[1] * 1.7)
    noise = rng.normal(0, 4, (size[1], size[0]))
    pixels = np.asarray(page, np.float32) * light + noise + 8
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L").filter(ImageFilter.GaussianBlur(0.6))


def drawing(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A line drawing: a few black strokes and flat colour fills on white (near-binary)."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(8, 16))):
        x0, y0 = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        x1, y1 = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3)) if rng.random() < 0.3 else None
        kind = rng.integers(0, 3)
        width = int(rng.integers(2, 6))
        if kind == 0:
            draw.ellipse(box, outline="black", fill=fill, width=width)
        elif kind == 1:
            draw.rectangle(box, outline="black", fill=fill, width=width)
        else:
            draw.line((x0, y0, x1, y1), fill="black", width=width)
    return image


def chart(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A bar chart with axes, labels and saturated colours."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    margin = size[0] // 10
    draw.line((margin, margin, margin, size[1] - margin, size[0] - margin, size[1] - margin), fill="black", width=3)
    bars = int(rng.integers(5, 12))
    step = (size[0] - 2 * margin) / bars
    for i in range(bars):
        height = rng.uniform(0.1, 0.9) * (size[1] - 2 * margin)
        colour = tuple(int(v) for v in rng.integers(0, 230, 3))
        left = margin + i * step + step * 0.15
        draw.rectangle((left, size[1] - margin - height, left + step * 0.7, size[1] - margin), fill=colour)
        draw.text((left, size[1] - margin + 5), f"{i + 2019}", fill="black", font=_font(max(10, margin // 4)))
    return image


def low_detail(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A nearly flat picture: a soft gradient sky with one faint blob."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    top, bottom = rng.uniform(60, 200, 3), rng.uniform(60, 230, 3)
    t = (y / size[1])[..., None]
    pixels = top * (1 - t) + bottom * t
    cx, cy, r = rng.uniform(0.2, 0.8) * size[0], rng.uniform(0.2, 0.8) * size[1], min(size) * rng.uniform(0.1, 0.25)
    blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
    pixels = pixels * (1 - 0.4 * blob) + rng.uniform(0, 255, 3) * 0.4 * blob
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def noisy(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A photo taken in the dark: one of the sample photos, enlarged, under heavy sensor noise."""
    photo = sorted(PHOTOS_DIR.glob("*.*g"))[int(rng.integers(0, 9))]
    with Image.open(photo) as source:
        image = source.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(image, np.float32) * 0.6 + rng.normal(0, 14, (size[1], size[0], 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def cells(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A microscope-like greyscale picture: bright cells with nuclei on a dark, grainy background."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    pixels = np.full((size[1], size[0]), 30.0, np.float32)
    for _ in range(int(rng.integers(20, 50))):
        cx, cy = rng.uniform(0, size[0]), rng.uniform(0, size[1])
        r = rng.uniform(0.02, 0.06) * min(size)
        d = (x - cx) ** 2 + (y - cy) ** 2
        pixels += 120 * np.exp(-d / (2 * r * r)) - 60 * np.exp(-d / (0.3 * r * r))
    pixels += rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")


def stereo(rng: np.random.Generator, size: tuple[int, int], *, shift: int) -> Image.Image:
    """One view of a stereo pair: a crop of a sample photo; the other view is `shift` pixels along."""
    photo = sorted(PHOTOS_DIR.glob("*.*g"))[int(rng.integers(0, 9))]
    with Image.open(photo) as source:
        image = source.convert("RGB")
    scale = max(size[0] / (image.width - 12), size[1] / image.height)
    image = image.resize((math.ceil(image.width * scale) + 12, math.ceil(image.height * scale)))
    return image.crop((shift, 0, shift + size[0], size[1]))


GENERATORS: dict[str, tuple[Callable[..., Image.Image], dict]] = {
    "text-page": (text_page, {}),
    "scan": (scan, {}),
    "drawing": (drawing, {}),
    "chart": (chart, {}),
    "low-detail": (low_detail, {}),
    "noisy": (noisy, {}),
    "cells": (cells, {}),
    "stereo-left": (stereo, {"shift": 0}),
    "stereo-right": (stereo, {"shift": 6}),
}
# Two instances of each kind, one per half: (seed, size). Stereo views share a seed (one scene).
INSTANCES = [(1, (800, 1000)), (2, (1100, 800))]
SMALL_INSTANCES = [(3, (420, 300)), (4, (300, 400))]
# Five more of each kind in the train half only: more shapes and sizes to fit on, while the test half
# (and the figures reported on it) stays the one of the earlier rounds.
TRAIN_ONLY_INSTANCES = [(5, (640, 480)), (6, (360, 360)), (7, (1400, 1000)), (8, (320, 240)), (9, (256, 340))]


@dataclass(frozen=True)
class Source:
    name: str
    half: str  # "train" or "test"
    make: Callable[[], Image.Image]


def _generated(kind: str, seed: int, size: tuple[int, int], half: str) -> Source:
    make, options = GENERATORS[kind]
    return Source(f"{kind}-{seed}", half, lambda: make(np.random.default_rng(seed), size, **options))


def sources() -> list[Source]:
    """Every source picture and its half of the split."""
    found: list[Source] = []
    photos = sorted(PHOTOS_DIR.glob("*.*g"))
    for i, path in enumerate(photos):

        def load(path: Path = path) -> Image.Image:
            with Image.open(path) as image:
                image.load()
                return image.convert("L" if image.mode in ("L", "LA") else "RGB")

        found.append(Source(path.stem, "train" if i % 2 == 0 else "test", load))
    makers = list(dict.fromkeys(make for make, _ in GENERATORS.values()))  # the two stereo views: one
    for kind in GENERATORS:
        make = GENERATORS[kind][0]
        for j, (seed, size) in enumerate([*INSTANCES, *SMALL_INSTANCES]):
            # Alternating the other way for every other kind, so that each half holds pictures larger
            # than the verification box (1100 x 800: verified reduced) and pictures within it; the two
            # views of a stereo scene stay in the same half.
            found.append(_generated(kind, seed, size, "train" if (j + makers.index(make)) % 2 == 0 else "test"))
        found += [_generated(kind, seed, size, "train") for seed, size in TRAIN_ONLY_INSTANCES]
    return found


# --- The labelled set ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    a: str  # "<source>/<chain>": a is stored first, b arrives later
    b: str
    kind: str
    duplicate: bool
    half: str


def _kind(a: str, b: str, unchanged: frozenset[str]) -> str:
    def name(chain: str) -> str:
        changes = edits.changes(chain, unchanged=unchanged)
        return "+".join(changes) if changes else ("original" if chain == "original" else "copy")

    first, second = name(a), name(b)
    if first == second:
        return "copy vs copy" if first in ("original", "copy") else "edit re-encoded vs edit"
    if "original" in (first, second) or "copy" in (first, second):
        other = second if first in ("original", "copy") else first
        vs = "original" if "original" in (first, second) else "copy"
        return f"{other} vs {vs}"
    return "edit vs another edit"


def labelled_pairs(source: Source, unchanged: frozenset[str]) -> list[Pair]:
    """The pairs of one source. ``unchanged``: the edits that leave this picture's pixels as they were
    (edits.unchanged_edits: greyscale of a grey picture, a blur of a smooth gradient); by the product's
    definition they make no different photo, so their pairs are labelled duplicates."""
    chains = ["original", *COPIES]
    # Copy vs copy and original vs copy; a copy made with a softer filter only against a larger picture
    # (see SOFT_COPIES).
    pairs = [(a, b) for a, b in itertools.combinations(chains, 2) if not _soft_against_smaller(a, b)]
    pairs += [("original", e) for e in EDITS]
    pairs += [(c, e) for e in EDITS for c in EDIT_VS_COPIES]
    for edited in EDITED_COPIES:
        edit = edited.rsplit("+", 1)[0] if not edited.startswith("brightness") else "brightness+30"
        pairs += [(edit, edited), ("original", edited), ("resize-50", edited)]
    pairs += [("blur-r1", "blur-r2"), ("sharpen-soft", "sharpen-r2"), ("mirror", "rotate180"), ("greyscale", "sepia")]
    out = []
    for a, b in pairs:
        duplicate = edits.changes(a, unchanged=unchanged) == edits.changes(b, unchanged=unchanged)
        out.append(Pair(f"{source.name}/{a}", f"{source.name}/{b}", _kind(a, b, unchanged), duplicate, source.half))
    return out


def chains_of(pairs: list[Pair]) -> set[str]:
    return {key for pair in pairs for key in (pair.a, pair.b)}


@dataclass
class LabelledSet:
    """Pairs and counts; the files themselves are made one source at a time (see each_source())."""

    pairs: list[Pair]
    files: int
    greyscale: list[str]


def each_source(
    names: set[str] | None = None, half: str | None = None
) -> Iterator[tuple[Source, dict[str, bytes], list[Pair], bool]]:
    """Each source (of one half, or of `names` only) with its files (key -> bytes) and its labelled pairs."""
    for source in sources():
        if (names is not None and source.name not in names) or (half is not None and source.half != half):
            continue
        image = source.make()
        greyscale = image.mode == "L"
        own = labelled_pairs(source, edits.unchanged_edits(image, EDITS))
        files = {key: edits.render(image, key.split("/", 1)[1]) for key in sorted(chains_of(own))}
        yield source, files, own, greyscale


def cross_pairs(originals: dict[str, str]) -> list[Pair]:
    """Every two sources in the same half (``originals``: key of each original -> its half)."""
    return [
        Pair(a, b, "another picture", False, originals[a])
        for a, b in itertools.combinations(sorted(originals), 2)
        if originals[a] == originals[b]
    ]


Measure = Callable[[dedupe.Examined, dedupe.Examined], object]


def measure_all(
    measure: Measure, names: set[str] | None = None, half: str | None = None, *, reverse: bool = False
) -> tuple[LabelledSet, dict[Pair, object]]:
    """``measure(stored, candidate)`` of every pair (``reverse``: its second picture stored first);
    per-image work (decode, signature, rendition) done once per image, one source at a time (the
    originals are kept for the pairs across sources)."""

    def measured(examined: dict[str, dedupe.Examined], pair: Pair) -> object:
        first, second = (pair.b, pair.a) if reverse else (pair.a, pair.b)
        return measure(examined[first], examined[second])

    results: dict[Pair, object] = {}
    pairs: list[Pair] = []
    greyscale: list[str] = []
    files = 0
    originals: dict[str, dedupe.Examined] = {}
    halves: dict[str, str] = {}
    for source, own_files, own_pairs, is_grey in each_source(names, half):
        examined = {key: dedupe.examine(data) for key, data in own_files.items()}
        for pair in own_pairs:
            results[pair] = measured(examined, pair)
        key = f"{source.name}/original"
        originals[key] = examined[key]
        originals[key].stored_view()
        originals[key].forget_image()
        halves[key] = source.half
        pairs += own_pairs
        files += len(own_files)
        greyscale += [source.name] if is_grey else []
    for pair in cross_pairs(halves):
        results[pair] = measured(originals, pair)
        pairs.append(pair)
    return LabelledSet(pairs, files, greyscale), results


def scores(decisions: dict[Pair, dedupe.Decision], half: str) -> tuple[int, int, int, int]:
    tp = fp = fn = tn = 0
    for pair, decision in decisions.items():
        if pair.half != half:
            continue
        called = decision.same
        tp += called and pair.duplicate
        fp += called and not pair.duplicate
        fn += not called and pair.duplicate
        tn += not called and not pair.duplicate
    return tp, fp, fn, tn


def _ratio(n: int, d: int) -> str:
    return f"{n / d:.4f}" if d else "n/a"


def report(labelled: LabelledSet, decisions: dict[Pair, dedupe.Decision], elapsed: float) -> str:
    out = ["## Result\n"]
    halves = {half: sorted({p.a.split("/")[0] for p in labelled.pairs if p.half == half}) for half in ("train", "test")}
    out.append(
        f"{labelled.files} files from {len(halves['train']) + len(halves['test'])} source pictures"
        f" ({len(labelled.greyscale)} greyscale), {len(labelled.pairs)} labelled pairs; decided in {elapsed:.0f} s.\n"
    )
    for half, names in halves.items():
        out.append(f"- {half} ({len(names)}): {', '.join(names)}")
    out.append("\n| half | pairs | duplicate | distinct | TP | FP | FN | TN | precision | recall |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for half in ("train", "test"):
        tp, fp, fn, tn = scores(decisions, half)
        out.append(
            f"| {half} | {tp + fp + fn + tn} | {tp + fn} | {fp + tn} | {tp} | {fp} | {fn} | {tn}"
            f" | {_ratio(tp, tp + fp)} | {_ratio(tp, tp + fn)} |"
        )
    below = below_copy_change(p for p in labelled.pairs if p.half == "test")
    if below:
        kept = {pair: decision for pair, decision in decisions.items() if pair not in below}
        tp, fp, fn, _ = scores(kept, "test")
        merged = sum(decisions[pair].same for pair in below)
        out.append(
            f"\nTest half without the {len(below)} pairs of an edit that moves the picture less than the copy's own"
            f" re-encoding and resizing do ({merged} of them called duplicate; `below_copy_change`,"
            f" docs/dedupe.md): precision {_ratio(tp, tp + fp)}, recall {_ratio(tp, tp + fn)}."
        )
    out.append("\n### Errors on the test half\n")
    if below:
        out.append("Marked *below the copy's change*: one of the pairs above, which the pixels cannot separate.\n")
    for pair, decision in decisions.items():
        if pair.half == "test" and decision.same != pair.duplicate:
            mark = " *below the copy's change*" if pair in below else ""
            out.append(f"- {pair.a} vs {pair.b.split('/', 1)[1]} ({pair.kind}){mark}: {decision.describe()}")
    out.append("\n### By kind of pair (both halves)\n")
    out.append("| kind | label | pairs | called duplicate | wrong (train) | wrong (test) |")
    out.append("|---|---|---|---|---|---|")
    table: dict[tuple[str, bool], Counter] = defaultdict(Counter)
    for pair, decision in decisions.items():
        row = table[(pair.kind, pair.duplicate)]
        row["pairs"] += 1
        row["called"] += decision.same
        row[f"wrong-{pair.half}"] += decision.same != pair.duplicate
    for (kind, duplicate), row in sorted(table.items(), key=lambda item: (not item[0][1], item[0][0])):
        out.append(
            f"| {kind} | {'duplicate' if duplicate else 'distinct'} | {row['pairs']} | {row['called']}"
            f" | {row['wrong-train']} | {row['wrong-test']} |"
        )
    return "\n".join(out)


def _measures(stored: dedupe.Examined, candidate: dedupe.Examined) -> dict:
    d = dedupe.distances(stored.signature, candidate.signature)
    # No structure limit here: the structure hash of a nearly flat picture is noise (docs/dedupe.md).
    loose = d.histogram_rms <= 0.1 and d.detail <= 2
    c = dedupe.compare(stored.stored_view(), candidate.view) if loose else None
    details = [_detail_profile(stored.signature), _detail_profile(candidate.signature)]
    return {"d": list(d), "c": list(c) if c else None, "details": details}


def _detail_profile(signature: dedupe.Signature) -> list[float | None]:
    values = np.frombuffer(signature.histogram, np.float32)[3 * dedupe.COLOUR_BINS :]
    return [None if math.isnan(v) else round(float(v), 4) for v in values]


def dump(path: Path, names: set[str] | None, half: str | None, *, reverse: bool = False) -> None:
    """Every pair's measures (signature distances; the comparison when a very loose filter passes),
    one JSON line each, to choose thresholds on the train half."""
    _, results = measure_all(_measures, names, half, reverse=reverse)
    with path.open("w") as out:
        for pair, measured in results.items():
            row = {"a": pair.a, "b": pair.b, "kind": pair.kind, "duplicate": pair.duplicate, "half": pair.half}
            row["stored"] = "b" if reverse else "a"
            out.write(json.dumps(row | measured) + "\n")


# --- Fitting the verification on the train half (from a --dump file) ------------------------------


def _row_measures(row: dict) -> tuple[dedupe.Distances, dedupe.Comparison | None]:
    """A dumped pair's signature distances (with whether both are flat, from their detail profiles)
    and its comparison."""
    profiles = [np.array([np.nan if v is None else v for v in p], np.float32) for p in row["details"]]
    flat = bool(dedupe.is_flat(profiles[0]) and dedupe.is_flat(profiles[1]))
    d = dedupe.Distances(*row["d"][:3], flat)
    return d, dedupe.Comparison(*row["c"]) if row["c"] is not None else None


def _decided(row: dict) -> bool:
    """What pictures/dedupe.py decides for a dumped pair, with its current constants."""
    d, c = _row_measures(row)
    return d.passes_filter() and c is not None and dedupe._is_same(d, c)


def _table(rows: list[dict], called: list[bool]) -> list[str]:
    out = ["| half | pairs | TP | FP | FN | precision | recall |", "|---|---|---|---|---|---|---|"]
    for half in ("train", "test"):
        pairs = [(r, c) for r, c in zip(rows, called, strict=True) if r["half"] == half]
        tp = sum(c and r["duplicate"] for r, c in pairs)
        fp = sum(c and not r["duplicate"] for r, c in pairs)
        fn = sum(not c and r["duplicate"] for r, c in pairs)
        out.append(f"| {half} | {len(pairs)} | {tp} | {fp} | {fn} | {_ratio(tp, tp + fp)} | {_ratio(tp, tp + fn)} |")
    return out


# The model (pictures/dedupe.py): gradient-boosted trees, logistic loss, Newton steps in the leaves. Depth
# 3 and 300 rounds: among depths 2 to 4 and 150 to 300 rounds, the best cross-validated precision at
# the same recall on the train half (two folds by source picture); deeper trees did no better.
TREES, DEPTH, LEARNING_RATE, LEAF_L2, MIN_LEAF = 300, 3, 0.1, 1.0, 10
THRESHOLDS = (-1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)


def _best_split(x: np.ndarray, g: np.ndarray, h: np.ndarray, rows: np.ndarray) -> tuple[float, int, float]:
    """(gain, feature, threshold) of the split of ``rows`` that most improves the second-order loss."""
    total_g, total_h = g[rows].sum(), h[rows].sum()
    best = (0.0, -1, 0.0)
    for j in range(x.shape[1]):
        order = rows[np.argsort(x[rows, j], kind="stable")]
        values = x[order, j]
        left_g, left_h = np.cumsum(g[order]), np.cumsum(h[order])
        cut = np.flatnonzero(values[:-1] < values[1:])
        cut = cut[(cut + 1 >= MIN_LEAF) & (len(values) - cut - 1 >= MIN_LEAF)]
        if not cut.size:
            continue
        lg, lh = left_g[cut], left_h[cut]
        right_g, right_h = total_g - lg, total_h - lh
        gain = lg**2 / (lh + LEAF_L2) + right_g**2 / (right_h + LEAF_L2) - total_g**2 / (total_h + LEAF_L2)
        k = int(np.argmax(gain))
        if gain[k] > best[0]:
            best = (float(gain[k]), j, float((values[cut[k]] + values[cut[k] + 1]) / 2))
    return best


def _grow(x: np.ndarray, g: np.ndarray, h: np.ndarray, rows: np.ndarray, depth: int) -> dedupe.Tree:
    gain, j, threshold = _best_split(x, g, h, rows) if depth < DEPTH else (0.0, -1, 0.0)
    if j < 0:
        return round(float(LEARNING_RATE * g[rows].sum() / (h[rows].sum() + LEAF_L2)), 6)
    left, right = rows[x[rows, j] <= threshold], rows[x[rows, j] > threshold]
    return [j, threshold, _grow(x, g, h, left, depth + 1), _grow(x, g, h, right, depth + 1)]


def _tree_values(tree: dedupe.Tree, x: np.ndarray) -> np.ndarray:
    if not isinstance(tree, list):
        return np.full(len(x), tree)
    j, threshold, left, right = tree
    out = np.empty(len(x))
    below = x[:, j] <= threshold
    out[below], out[~below] = _tree_values(left, x[below]), _tree_values(right, x[~below])
    return out


def fit_trees(x: np.ndarray, y: np.ndarray) -> list[dedupe.Tree]:
    score, trees = np.zeros(len(y)), []
    everything = np.arange(len(y))
    for _ in range(TREES):
        p = 1 / (1 + np.exp(-score))
        tree = _grow(x, y - p, p * (1 - p) + 1e-6, everything, 0)
        trees.append(tree)
        score += _tree_values(tree, x)
    return trees


def _score_all(trees: list[dedupe.Tree], x: np.ndarray) -> np.ndarray:
    return sum((_tree_values(tree, x) for tree in trees), np.zeros(len(x)))


def fit(paths: list[Path], *, write: bool) -> str:
    """Fit the verification trees on the train half of the dumped pairs that pass the signature filter
    and the aspect limit; report the train half's cross-validated precision and recall (two folds by
    source picture) by threshold, then both halves scored by the fitted trees at VERIFY_SCORE_MIN, and
    the signature alone (the thresholds before issue 18). Only the train half is fitted on; the test
    half is only scored. With ``write``, the trees go to pictures/dedupe_model.json."""
    rows = [json.loads(line) for path in paths for line in path.read_text().splitlines()]
    measured = [_row_measures(r) for r in rows]

    def considered(d: dedupe.Distances, c: dedupe.Comparison | None) -> bool:
        return c is not None and d.passes_filter() and c.may_be_same()

    kept = [i for i, (d, c) in enumerate(measured) if considered(d, c)]
    x_all = np.array([dedupe.verification_features(*measured[i]) for i in kept])
    train = np.array([rows[i]["half"] == "train" for i in kept])
    x, y = x_all[train], np.array([rows[i]["duplicate"] for i in kept], dtype=float)[train]
    sources = [rows[i]["a"].split("/")[0] for i in kept if rows[i]["half"] == "train"]
    fold_of = {name: k % 2 for k, name in enumerate(sorted(set(sources)))}
    fold = np.array([fold_of[name] for name in sources])
    cross = np.zeros(len(y))
    for k in (0, 1):
        cross[fold == k] = _score_all(fit_trees(x[fold != k], y[fold != k]), x[fold == k])
    duplicates = sum(r["duplicate"] for r in rows if r["half"] == "train")
    out = ["Train half, cross-validated (two folds by source picture), by score threshold:", ""]
    out += ["| threshold | TP | FP | FN | precision | recall |", "|---|---|---|---|---|---|"]
    for threshold in THRESHOLDS:
        tp = int(np.sum((cross >= threshold) & (y == 1)))
        fp = int(np.sum((cross >= threshold) & (y == 0)))
        out.append(
            f"| {threshold} | {tp} | {fp} | {duplicates - tp} | {_ratio(tp, tp + fp)} | {_ratio(tp, duplicates)} |"
        )
    trees = fit_trees(x, y)
    if write:
        model = {"features": list(dedupe.FEATURES), "trees": trees}
        dedupe.MODEL_PATH.write_text(json.dumps(model, separators=(",", ":")) + "\n")
    scores = dict(zip(kept, _score_all(trees, x_all), strict=True))
    called = [scores.get(i, -np.inf) >= dedupe.VERIFY_SCORE_MIN for i in range(len(rows))]
    out += ["", f"Both halves, the trees fitted on the whole train half, at {dedupe.VERIFY_SCORE_MIN}:", ""]
    out += _table(rows, called)
    today = [r["d"][0] <= 0.013 and r["d"][1] <= 28 and r["d"][2] <= 0.10 for r in rows]
    out += [
        "",
        "The signature alone with the thresholds before issue 18 (colour 0.013, structure 28, detail 0.10):",
        "",
    ]
    return "\n".join(out + _table(rows, today))


# --- How far an edit moves a picture at a copy's scale ------------------------------------------------

# Edits that change detail or tone a little: the ones merged with small copies (docs/dedupe.md).
VISIBILITY_EDITS = [
    "blur-r1",
    "blur-r2",
    "blur-r3",
    "sharpen-soft",
    "sharpen-r2",
    "brightness+10",
    "contrast+10",
    "gamma-0.8",
    "saturation+30",
]
VISIBILITY_SCALES = (0.5, 0.25, 0.12)


def _rms_between(a: Image.Image, b: Image.Image) -> float:
    d = np.asarray(a.convert("RGB"), np.float64) - np.asarray(b.convert("RGB"), np.float64)
    return float(np.sqrt(np.mean(d * d)))


def visibility_by_source(names: set[str] | None = None) -> dict[tuple[str, float, str], float]:
    """For each source (or those named), copy scale and small edit: copy_change_ratios of the edit
    against the platform's resized copy at that scale (Lanczos, then JPEG q85). Under 1, the edit moves
    the picture less than the copy's own recompression does: the pair is labelled distinct, but the
    pixels at that scale do not say so. Edits that change nothing on a source are left out."""
    pairs: dict[Pair, tuple[str, float, str]] = {}
    for source in sources():
        if names is not None and source.name not in names:
            continue
        unchanged = edits.unchanged_edits(source.make(), VISIBILITY_EDITS)
        for factor in VISIBILITY_SCALES:
            copy = f"{source.name}/resize-{round(factor * 100)}"
            for name in VISIBILITY_EDITS:
                if name not in unchanged:
                    pair = Pair(copy, f"{source.name}/{name}", f"{name} vs copy", False, source.half)
                    pairs[pair] = (source.name, factor, name)
    return {pairs[pair]: ratio for pair, ratio in copy_change_ratios(pairs).items()}


def visibility_ratios(names: set[str] | None = None) -> dict[tuple[float, str], list[float]]:
    """visibility_by_source() gathered over the sources: (copy scale, edit) -> one ratio per source."""
    ratios: dict[tuple[float, str], list[float]] = defaultdict(list)
    for (_, factor, name), ratio in visibility_by_source(names).items():
        ratios[(factor, name)].append(ratio)
    return ratios


def _copy_steps(chain: str) -> str:
    """The steps of a chain that keep the photo (re-encodes, resizes), as a chain: what a platform did."""
    return "+".join(step.name for step in _steps(chain) if step.keeps_photo) or "original"


def copy_change_ratios(pairs: Iterable[Pair]) -> dict[Pair, float]:
    """For each distinct pair of an edit against an unaltered copy of its source (the original, a
    re-encode, a resize, a chain of them): how far the edit moves the picture, as a share of how far a
    platform's processing moved it. Both at the common scale (the smaller picture's size): the edit's own
    steps applied to the original, then scaled (Lanczos), against the original scaled alike (RGB RMS,
    levels); over the larger of the two pictures' own processing (each side's re-encode and resize steps
    applied to the original, against the same scaled original). Under 1, the edit is smaller than what
    re-encoding did to one of the pictures: labelled distinct, but a duplicate (the source against that
    copy, which must be accepted) differs by more. Infinite when neither picture was processed (the
    original, a PNG copy). Pairs of two edits or of two copies are left out."""
    wanted: dict[str, list[tuple[Pair, str, str]]] = defaultdict(list)
    for pair in pairs:
        source, first = pair.a.split("/", 1)
        second = pair.b.split("/", 1)[1]
        if not pair.duplicate and not (edits.changes(first) and edits.changes(second)):
            wanted[source].append((pair, first, second))
    ratios: dict[Pair, float] = {}
    for source in sources():
        if source.name not in wanted:
            continue
        image = source.make()
        rendered: dict[str, Image.Image] = {"original": image}
        for pair, first, second in wanted[source.name]:
            for chain in (_copy_steps(first), _copy_steps(second)):
                if chain not in rendered:
                    rendered[chain] = edits.decode(edits.render(image, chain))
            processed = [rendered[_copy_steps(first)], rendered[_copy_steps(second)]]
            size = min((picture.size for picture in processed), key=lambda s: s[0] * s[1])

            def at_size(picture: Image.Image, size: tuple[int, int] = size) -> Image.Image:
                return picture if picture.size == size else picture.resize(size, Image.Resampling.LANCZOS)

            edited = image
            for name in edits.changes(first) or edits.changes(second):
                edited = edits.EDITS[name].apply(edited)
            base = at_size(image)
            own = max(_rms_between(at_size(picture), base) for picture in processed)
            ratios[pair] = _rms_between(at_size(edited), base) / own if own else math.inf
    return ratios


def below_copy_change(pairs: Iterable[Pair]) -> set[Pair]:
    """The pairs whose edit moves the picture less than a platform's processing moved one of the two
    (copy_change_ratios under 1): the product decision docs/dedupe.md describes ("What the pixels of a
    small copy can show")."""
    return {pair for pair, ratio in copy_change_ratios(pairs).items() if ratio < 1}


def visibility(names: set[str] | None = None) -> str:
    """visibility_ratios() as a markdown table (docs/dedupe.md, "What the pixels of a small copy can show")."""
    ratios = visibility_ratios(names)
    count = sum(1 for source in sources() if names is None or source.name in names)
    out = [
        f"{count} sources. The edit's change at the copy's scale, over the change the copy's own re-encoding"
        f" (JPEG q{edits.RESIZE_QUALITY}) makes:",
        "",
        "| copy | edit | sources | under 1 | median | smallest | largest |",
        "|---|---|---|---|---|---|---|",
    ]
    for (factor, name), values in ratios.items():
        values.sort()
        out.append(
            f"| resize-{round(factor * 100)} | {name} | {len(values)} | {sum(v < 1 for v in values)} "
            f"| {values[len(values) // 2]:.2f} | {values[0]:.2f} | {values[-1]:.2f} |"
        )
    return "\n".join(out)


# --- Copies made by other resizers and encoders than the catalogue's ---------------------------------


def _jpeg(image: Image.Image, **options: object) -> bytes:
    return edits.encode(image, "JPEG", **options)


def _vips_thumbnail(image: Image.Image, factor: float) -> bytes:
    """libvips' thumbnail (Mastodon's and many image services' resizer: shrink-on-load, then Lanczos 3)."""
    width, height = (max(1, round(side * factor)) for side in image.size)
    reduced = pyvips.Image.thumbnail_buffer(edits.encode(image, "PNG"), width, height=height, size="force")
    return reduced.jpegsave_buffer(Q=85)


def _pillow_thumbnail(image: Image.Image, factor: float) -> bytes:
    """Pillow's Image.thumbnail (bicubic, with reducing_gap 2), then JPEG q80."""
    copy = image.copy()
    copy.thumbnail((max(1, round(image.width * factor)), max(1, round(image.height * factor))))
    return _jpeg(copy, quality=80)


def _resizers() -> dict[str, Callable[[Image.Image], bytes]]:
    """Copies the labelled set does not hold, made the way other platforms and libraries make them."""
    found: dict[str, Callable[[Image.Image], bytes]] = {}
    filters = {
        "bilinear": Image.Resampling.BILINEAR,
        "bicubic": Image.Resampling.BICUBIC,
        "box": Image.Resampling.BOX,
        "hamming": Image.Resampling.HAMMING,
    }
    for factor in (0.5, 0.25, 0.12):
        percent = round(factor * 100)
        for name, resample in filters.items():
            found[f"{name} {percent}% + JPEG q85"] = lambda im, f=factor, r=resample: _jpeg(
                edits.scaled(im, f, r), quality=85
            )
        found[f"Pillow thumbnail {percent}% + JPEG q80"] = lambda im, f=factor: _pillow_thumbnail(im, f)
        found[f"libvips thumbnail {percent}% + JPEG q85"] = lambda im, f=factor: _vips_thumbnail(im, f)
    found["JPEG q85 without chroma subsampling"] = lambda im: _jpeg(im, quality=85, subsampling=0)
    found["progressive, optimised JPEG q75"] = lambda im: _jpeg(im, quality=75, progressive=True, optimize=True)
    found["lossless WebP"] = lambda im: edits.encode(im, "WEBP", lossless=True)
    found["WebP q60"] = lambda im: edits.encode(im, "WEBP", quality=60)
    found["Lanczos 50% + WebP q80"] = lambda im: edits.encode(edits.scaled(im, 0.5), "WEBP", quality=80)
    return found


def resizers(half: str = "test", names: set[str] | None = None) -> str:
    """How many copies made by other resizers and encoders (_resizers) are missed, on the sources of one
    half: each against the original stored first, stored before the original, and against a JPEG q50
    copy of the original stored first. None of these copies is in the labelled set."""
    made = _resizers()
    missed: dict[str, list[str]] = {name: [] for name in made}
    count = 0
    for source in sources():
        if source.half != half or (names is not None and source.name not in names):
            continue
        count += 1
        image = source.make()
        original = dedupe.examine(edits.render(image, "original"))
        q50 = dedupe.examine(edits.render(image, "jpeg-q50"))
        for name, make in made.items():
            copy = dedupe.examine(make(image))
            for label, stored, arriving in (("after", original, copy), ("before", copy, original), ("q50", q50, copy)):
                if not dedupe.decide(stored, arriving).same:
                    missed[name].append(f"{source.name} ({label})")
    out = [
        f"Copies not in the labelled set, of the {count} sources of the {half} half, each against the original"
        " (stored after it and before it) and a JPEG q50 copy:",
        "",
        "| copy | pairs | missed | which |",
        "|---|---|---|---|",
    ]
    for name, misses in missed.items():
        shown = ", ".join(misses[:4]) + (", ..." if len(misses) > 4 else "")
        out.append(f"| {name} | {3 * count} | {len(misses)} | {shown} |")
    total, pairs = sum(len(m) for m in missed.values()), 3 * count * len(made)
    out.append(f"\nIn all: {total} of {pairs} missed (recall {_ratio(pairs - total, pairs)}).")
    return "\n".join(out)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "everhash.settings")  # the image limits ingest applies
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="four sources only (a smoke run)")
    parser.add_argument("--dump", type=Path, help="write every pair's measures to this JSON-lines file")
    parser.add_argument("--half", choices=["train", "test"], help="only the sources of this half")
    parser.add_argument(
        "--fit", type=Path, nargs="+", help="fit the verification on the train half of --dump files (either half)"
    )
    parser.add_argument("--write-model", action="store_true", help="with --fit: write pictures/dedupe_model.json")
    parser.add_argument(
        "--reversed", action="store_true", help="store each pair's second picture first (ingest meets either order)"
    )
    parser.add_argument(
        "--visibility", action="store_true", help="how far small edits move each source at the copies' scales"
    )
    parser.add_argument(
        "--resizers", action="store_true", help="copies made by other resizers and encoders (not in the set)"
    )
    args = parser.parse_args()
    names = {"chelsea", "coffee", "text-page-1", "drawing-2"} if args.quick else None
    if args.fit:
        print(fit(args.fit, write=args.write_model))
        return
    if args.visibility:
        print(visibility(names))
        return
    if args.resizers:
        print(resizers(args.half or "test", names))
        return
    if args.dump:
        dump(args.dump, names, args.half, reverse=args.reversed)
        return
    started = time.perf_counter()
    labelled, decisions = measure_all(dedupe.decide, names, args.half, reverse=args.reversed)
    if args.reversed:
        print("Each pair's second picture stored first, its first arriving (--reversed).\n")
    print(report(labelled, decisions, time.perf_counter() - started))


if __name__ == "__main__":
    main()
