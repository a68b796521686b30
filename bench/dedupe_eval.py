"""Precision and recall of pictures/dedupe.py on a labelled set built from the sample photos.

    .venv/bin/python bench/dedupe_eval.py            # markdown report on stdout (docs/dedupe.md)

The labelled set: every sample photo, edited. Edits that keep the photo (JPEG re-encodes, resizes,
PNG<->JPEG) give duplicates; edits that change it (filters, crops, mirror, rotation) give distinct
pictures. Pairs: the original against every edited copy, edited copies against each other (so
combinations such as mirror+sepia are distinct from sepia alone, and a re-encoded sepia copy is a
duplicate of the sepia copy), and every pair of different photos. `build_labelled_set()` is reused by
pictures/tests/test_dedupe.py.
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pictures import dedupe  # noqa: E402

PHOTOS_DIR = ROOT / "tweets" / "sample_data" / "photos"


# --- Edits --------------------------------------------------------------------------------------


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return _decode(buffer.getvalue())


def _png(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return _decode(buffer.getvalue())


def _resize(image: Image.Image, factor: float) -> Image.Image:
    """What a platform does to an upload: scale down, then recompress."""
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return _jpeg(image.resize(size, Image.Resampling.LANCZOS), 85)


def _sepia(image: Image.Image) -> Image.Image:
    # The usual sepia matrix (R', G', B' from R, G, B), clipped to 255 by Pillow.
    matrix = (0.393, 0.769, 0.189, 0, 0.349, 0.686, 0.168, 0, 0.272, 0.534, 0.131, 0)
    return image.convert("RGB", matrix)


def _webp(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=quality)
    return _decode(buffer.getvalue())


def _crop(image: Image.Image, *, centre: bool, keep: float = 0.8) -> Image.Image:
    width, height = round(image.width * keep), round(image.height * keep)
    left, top = ((image.width - width) // 2, (image.height - height) // 2) if centre else (0, 0)
    return image.crop((left, top, left + width, top + height))


@dataclass(frozen=True)
class Step:
    name: str
    apply: Callable[[Image.Image], Image.Image]
    keeps_photo: bool  # True: the result is the same photo (a duplicate), by the product's definition
    colour_only: bool = False  # changes nothing on a greyscale photo (its result has the same pixels)


STEPS = {
    step.name: step
    for step in [
        *(Step(f"jpeg-q{q}", lambda im, q=q: _jpeg(im, q), True) for q in (95, 90, 80, 70, 60)),
        *(Step(f"resize-{p}", lambda im, p=p: _resize(im, p / 100), True) for p in (75, 50, 25)),
        Step("png-to-jpeg", lambda im: _jpeg(im, 75), True),  # Pillow's default quality
        Step("jpeg-to-png", _png, True),
        Step("greyscale", lambda im: ImageOps.grayscale(im).convert("RGB"), False, colour_only=True),
        Step("sepia", _sepia, False),
        Step("brightness+30", lambda im: ImageEnhance.Brightness(im).enhance(1.3), False),
        Step("brightness-30", lambda im: ImageEnhance.Brightness(im).enhance(0.7), False),
        Step("contrast+30", lambda im: ImageEnhance.Contrast(im).enhance(1.3), False),
        Step("contrast-30", lambda im: ImageEnhance.Contrast(im).enhance(0.7), False),
        Step("blur-r3", lambda im: im.filter(ImageFilter.GaussianBlur(3)), False),
        # Strong: twice Pillow's default unsharp-mask amount, no threshold.
        Step("sharpen", lambda im: im.filter(ImageFilter.UnsharpMask(radius=2, percent=300, threshold=0)), False),
        Step("invert", ImageOps.invert, False),
        Step("mirror", ImageOps.mirror, False),
        Step("rotate-90", lambda im: im.transpose(Image.Transpose.ROTATE_90), False),
        Step("crop-centre-80", lambda im: _crop(im, centre=True), False),
        Step("crop-corner-80", lambda im: _crop(im, centre=False), False),
        # Probes beyond the labelled set (reported apart, not counted): harsher copies, slighter edits.
        *(Step(f"jpeg-q{q}", lambda im, q=q: _jpeg(im, q), True) for q in (40, 20)),
        Step("resize-10", lambda im: _resize(im, 0.1), True),
        Step("resize-50-nearest", lambda im: _jpeg(im.resize((im.width // 2, im.height // 2), 0), 85), True),
        Step("webp-q80", lambda im: _webp(im, 80), True),
        Step("jpeg-q90-twice-q75", lambda im: _jpeg(_jpeg(im, 90), 75), True),
        Step("brightness+10", lambda im: ImageEnhance.Brightness(im).enhance(1.1), False),
        Step("contrast+10", lambda im: ImageEnhance.Contrast(im).enhance(1.1), False),
        Step("saturation+30", lambda im: ImageEnhance.Color(im).enhance(1.3), False, colour_only=True),
        Step("blur-r1", lambda im: im.filter(ImageFilter.GaussianBlur(1)), False),
        Step("crop-centre-95", lambda im: _crop(im, centre=True, keep=0.95), False),
        Step("rotate-3", lambda im: im.rotate(3, Image.Resampling.BICUBIC), False),
    ]
}

# Every single edit, then the combinations the sample album uses or that a platform produces.
FILTERS = ["greyscale", "sepia", "brightness+30", "brightness-30", "contrast+30", "contrast-30"]
FILTERS += ["blur-r3", "sharpen", "invert"]
GEOMETRY = ["mirror", "rotate-90", "crop-centre-80", "crop-corner-80"]
REENCODES = ["jpeg-q95", "jpeg-q90", "jpeg-q80", "jpeg-q70", "jpeg-q60"]
RESIZES = ["resize-75", "resize-50", "resize-25"]
COMBINED_EDITS = [
    "mirror+sepia",
    "crop-centre-80+greyscale",
    "rotate-90+brightness+30",
    "sepia+jpeg-q70",
    "mirror+resize-50",
    "crop-centre-80+jpeg-q80",
    "greyscale+jpeg-q60",
    "blur-r3+jpeg-q80",
    "sharpen+resize-50",
]
PROBES = ["jpeg-q40", "jpeg-q20", "resize-10", "resize-50-nearest", "webp-q80", "jpeg-q90-twice-q75"]
PROBES += ["brightness+10", "contrast+10", "saturation+30", "blur-r1", "crop-centre-95", "rotate-3"]
# Edited copies compared with each other (besides each against the original).
EDIT_PAIRS = [
    ("sepia", "mirror+sepia"),
    ("mirror", "mirror+sepia"),
    ("greyscale", "crop-centre-80+greyscale"),
    ("crop-centre-80", "crop-centre-80+greyscale"),
    ("brightness+30", "rotate-90+brightness+30"),
    ("rotate-90", "rotate-90+brightness+30"),
    ("crop-centre-80", "crop-corner-80"),
    ("mirror", "rotate-90"),
    ("greyscale", "sepia"),
    ("blur-r3", "sharpen"),
    ("sepia", "sepia+jpeg-q70"),
    ("mirror", "mirror+resize-50"),
    ("crop-centre-80", "crop-centre-80+jpeg-q80"),
    ("greyscale", "greyscale+jpeg-q60"),
    ("blur-r3", "blur-r3+jpeg-q80"),
    ("sharpen", "sharpen+resize-50"),
]


def _split(edit: str) -> list[str]:
    """'rotate-90+brightness+30' -> ['rotate-90', 'brightness+30'] (step names contain '+' too)."""
    steps, rest = [], edit
    while rest:
        name = next(n for n in sorted(STEPS, key=len, reverse=True) if rest.startswith(n))
        steps.append(name)
        rest = rest[len(name) :].removeprefix("+")
    return steps


# --- The labelled set ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    a: str  # keys of LabelledSet.images: "<photo>/<edit>"
    b: str
    kind: str  # what tells b from a: "jpeg-q70", "mirror", "sepia vs mirror+sepia", "another photo"
    group: str
    duplicate: bool


@dataclass
class LabelledSet:
    images: dict[str, Image.Image] = field(default_factory=dict)
    pairs: list[Pair] = field(default_factory=list)
    greyscale_sources: list[str] = field(default_factory=list)


def _group(edit: str, duplicate: bool) -> str:
    steps = _split(edit)
    if len(steps) > 1:
        return "edited copy re-encoded" if duplicate else "combination"
    if steps[0] in PROBES:
        return "probe, same photo" if duplicate else "probe, different photo"
    if steps[0] in REENCODES:
        return "re-encode"
    if steps[0] in RESIZES:
        return "resize"
    if steps[0] in ("png-to-jpeg", "jpeg-to-png"):
        return "format"
    return "filter" if steps[0] in FILTERS else "geometry"


def build_labelled_set(
    photos_dir: Path = PHOTOS_DIR,
    *,
    names: Sequence[str] | None = None,
    edits: Sequence[str] | None = None,
    edit_pairs: Sequence[tuple[str, str]] = EDIT_PAIRS,
    other_photos: bool = True,
) -> LabelledSet:
    """Edit every photo in `photos_dir` and label every pair (see the module docstring).

    `names` limits the photos (file stems); `edits`, `edit_pairs` and `other_photos` change the pairs
    (the defaults are the labelled set of docs/dedupe.md).
    """
    labelled = LabelledSet()
    paths = sorted(p for p in photos_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if names is not None:
        paths = [p for p in paths if p.stem in names]
    for path in paths:
        photo = path.stem
        with Image.open(path) as source:
            source.load()
            greyscale = source.mode in ("L", "LA", "I", "I;16")
            original = source.convert("RGB")  # what the pipeline hands to compute_signature
        if greyscale:
            labelled.greyscale_sources.append(photo)
        conversion = "png-to-jpeg" if path.suffix.lower() == ".png" else "jpeg-to-png"
        photo_edits = [*REENCODES, *RESIZES, conversion, *FILTERS, *GEOMETRY, *COMBINED_EDITS]
        if edits is not None:
            photo_edits = list(edits)
        labelled.images[f"{photo}/original"] = original
        for edit in photo_edits:
            image = original
            for step in _split(edit):
                image = STEPS[step].apply(image)
            labelled.images[f"{photo}/{edit}"] = image

        def changes(edit: str, greyscale: bool = greyscale) -> list[str]:
            """The steps that change the photo. Greyscale of a greyscale photo is the same photo."""
            steps = [] if edit == "original" else _split(edit)
            return [s for s in steps if not STEPS[s].keeps_photo and not (greyscale and STEPS[s].colour_only)]

        for edit in photo_edits:
            duplicate = not changes(edit)
            same_pixels = greyscale and edit in STEPS and STEPS[edit].colour_only
            kind = f"{edit} of a greyscale photo" if same_pixels else edit
            group = "same pixels" if same_pixels else _group(edit, duplicate)
            labelled.pairs.append(Pair(f"{photo}/original", f"{photo}/{edit}", kind, group, duplicate))
        for a, b in edit_pairs:
            duplicate = changes(a) == changes(b)
            group = "edited copy re-encoded" if duplicate else "combination"
            labelled.pairs.append(Pair(f"{photo}/{a}", f"{photo}/{b}", f"{a} vs {b}", group, duplicate))
    originals = [key for key in labelled.images if key.endswith("/original")]
    for a, b in itertools.combinations(originals if other_photos else [], 2):
        labelled.pairs.append(Pair(a, b, "another photo", "another photo", False))
    return labelled


# --- Measuring ----------------------------------------------------------------------------------

MEASURES = ("histogram_rms", "structure", "detail")
LABELS = {"histogram_rms": "colour RMS", "structure": "structure (bits)", "detail": "detail"}
GROUPS = ["re-encode", "resize", "format", "edited copy re-encoded", "same pixels"]
GROUPS += ["filter", "geometry", "combination", "another photo", "probe, same photo", "probe, different photo"]

Result = tuple[Pair, dedupe.Distances]


def thresholds() -> dict[str, float]:
    return {
        "histogram_rms": dedupe.HISTOGRAM_RMS_THRESHOLD,
        "structure": dedupe.STRUCTURE_DISTANCE_THRESHOLD,
        "detail": dedupe.DETAIL_DISTANCE_THRESHOLD,
    }


def measure(labelled: LabelledSet) -> tuple[list[Result], float]:
    """Distances of every pair, and the seconds spent computing the signatures."""
    started = time.perf_counter()
    signatures = {key: dedupe.compute_signature(image) for key, image in labelled.images.items()}
    elapsed = time.perf_counter() - started
    return [(pair, dedupe.distances(signatures[pair.a], signatures[pair.b])) for pair in labelled.pairs], elapsed


def _called(d: dedupe.Distances, limits: dict[str, float]) -> bool:
    return all(getattr(d, m) <= limits[m] for m in MEASURES)


def _scores(results: list[Result], limits: dict[str, float]) -> tuple[int, int, int, int]:
    tp = fp = fn = tn = 0
    for pair, d in results:
        called = _called(d, limits)
        tp += called and pair.duplicate
        fp += called and not pair.duplicate
        fn += not called and pair.duplicate
        tn += not called and not pair.duplicate
    return tp, fp, fn, tn


def _ratio(numerator: int, denominator: int) -> str:
    return f"{numerator / denominator:.3f}" if denominator else "n/a"


def _fmt(measure_name: str, value: float) -> str:
    if value == float("inf"):
        return "off"
    return f"{value:.0f}" if measure_name == "structure" else f"{value:.4f}"


def _pair_name(pair: Pair) -> str:
    photo_a, edit_a = pair.a.split("/")
    photo_b, edit_b = pair.b.split("/")
    return f"{photo_a} vs {photo_b}" if photo_a != photo_b else f"{photo_a}: {edit_a} vs {edit_b}"


def _describe(d: dedupe.Distances) -> str:
    return ", ".join(f"{LABELS[m]} {_fmt(m, getattr(d, m))}" for m in MEASURES)


SWEEPS = {
    "histogram_rms": [0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.040, float("inf")],
    "structure": [4, 8, 12, 16, 24, 40, 48, 64, 80, 96, 128, 256],
    "detail": [0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, float("inf")],
}


def _kind_table(results: list[Result], limits: dict[str, float]) -> list[str]:
    out = [f"| group | kind | label | pairs | {' | '.join(LABELS[m] for m in MEASURES)} | called duplicate |"]
    out.append("|---|---|---|---|---|---|---|---|")
    kinds: dict[tuple[str, str, bool], list[dedupe.Distances]] = {}
    for p, d in sorted(results, key=lambda r: GROUPS.index(r[0].group)):
        kinds.setdefault((p.group, p.kind, p.duplicate), []).append(d)
    for (group, kind, duplicate), ds in kinds.items():
        spans = " | ".join(
            f"{_fmt(m, min(getattr(d, m) for d in ds))} to {_fmt(m, max(getattr(d, m) for d in ds))}" for m in MEASURES
        )
        called = sum(_called(d, limits) for d in ds)
        out.append(
            f"| {group} | {kind} | {'duplicate' if duplicate else 'distinct'} | {len(ds)} | {spans} | {called} |"
        )
    return out


def report(labelled: LabelledSet, results: list[Result], elapsed: float) -> str:
    limits = thresholds()
    dup = [(p, d) for p, d in results if p.duplicate]
    distinct = [(p, d) for p, d in results if not p.duplicate]
    photos = sorted({key.split("/")[0] for key in labelled.images})
    tp, fp, fn, tn = _scores(results, limits)
    out = ["## Result at the chosen thresholds\n"]
    out.append(
        f"{len(labelled.images)} images from {len(photos)} photos ({len(labelled.greyscale_sources)} greyscale:"
        f" {', '.join(labelled.greyscale_sources)}), {len(results)} labelled pairs: {len(dup)} duplicate,"
        f" {len(distinct)} distinct. Signatures computed in {elapsed:.2f} s"
        f" ({1000 * elapsed / len(labelled.images):.1f} ms per image on average).\n"
    )
    out.append("| colour RMS <= | structure <= | detail <= | TP | FP | FN | TN | precision | recall |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    shown = " | ".join(_fmt(m, limits[m]) for m in MEASURES)
    out.append(f"| {shown} | {tp} | {fp} | {fn} | {tn} | {_ratio(tp, tp + fp)} | {_ratio(tp, tp + fn)} |\n")
    for p, d in results:
        if _called(d, limits) != p.duplicate:
            out.append(f"- WRONG: {_pair_name(p)} ({'duplicate' if p.duplicate else 'distinct'}): {_describe(d)}")

    out.append("\n## Margins\n")
    out.append(
        "For each measure: the largest distance of any duplicate pair, and the smallest distance among the"
        " distinct pairs that the other two measures let through (the pairs this measure alone must reject).\n"
    )
    out.append(
        "| measure | largest duplicate | pair | smallest distinct it must reject | pair"
        " | geometric midpoint | threshold | margins (threshold / largest duplicate, smallest distinct / threshold) |"
    )
    out.append("|---|---|---|---|---|---|---|---|")
    for m in MEASURES:
        worst = max(dup, key=lambda r, m=m: getattr(r[1], m))
        high = getattr(worst[1], m)
        others = [o for o in MEASURES if o != m]
        must = [(p, d) for p, d in distinct if all(getattr(d, o) <= limits[o] for o in others)]
        if not must:
            out.append(
                f"| {LABELS[m]} | {_fmt(m, high)} | {_pair_name(worst[0])} | none | | | {_fmt(m, limits[m])} | |"
            )
            continue
        closest = min(must, key=lambda r, m=m: getattr(r[1], m))
        low = getattr(closest[1], m)
        out.append(
            f"| {LABELS[m]} | {_fmt(m, high)} | {_pair_name(worst[0])} | {_fmt(m, low)} | {_pair_name(closest[0])}"
            f" ({len(must)} such pairs) | {(high * low) ** 0.5:.4g} | {_fmt(m, limits[m])}"
            f" | {limits[m] / high if high else float('inf'):.2f} x, {low / limits[m]:.2f} x |"
        )
    hardest = min(distinct, key=lambda r: max(getattr(r[1], m) / limits[m] for m in MEASURES))
    score = max(getattr(hardest[1], m) / limits[m] for m in MEASURES)
    easiest = max(dup, key=lambda r: max(getattr(r[1], m) / limits[m] for m in MEASURES))
    worst_dup = max(getattr(easiest[1], m) / limits[m] for m in MEASURES)
    out.append(
        f"\nClosest distinct pair to being merged: {_pair_name(hardest[0])}, its largest distance is {score:.2f} x"
        f" its threshold ({_describe(hardest[1])}). Closest duplicate pair to being missed:"
        f" {_pair_name(easiest[0])}, at {worst_dup:.2f} x a threshold ({_describe(easiest[1])}).\n"
    )

    out.append("## Distances by kind of pair (min to max over the photos)\n")
    out.extend(_kind_table(results, limits))

    out.append("\n## Threshold sweeps (one measure varied, the other two at their chosen thresholds)\n")
    for m in MEASURES:
        out.append(f"### {LABELS[m]}\n")
        out.append("| threshold | TP | FP | FN | precision | recall |")
        out.append("|---|---|---|---|---|---|")
        for value in sorted({*SWEEPS[m], limits[m]}):
            tp, fp, fn, _ = _scores(results, {**limits, m: value})
            mark = " (chosen)" if value == limits[m] else ""
            out.append(
                f"| {_fmt(m, value)}{mark} | {tp} | {fp} | {fn} | {_ratio(tp, tp + fp)} | {_ratio(tp, tp + fn)} |"
            )
        out.append("")
    return "\n".join(out)


def probe_report(results: list[Result]) -> str:
    out = ["## Beyond the labelled set (probes, not counted above)\n"]
    out.append(
        "Harsher copies that are still the same photo, and slighter edits that are still different photos"
        " by the product's definition, each against the original.\n"
    )
    out.extend(_kind_table(results, thresholds()))
    out.append("\nProbe pairs the method gets wrong:\n")
    for p, d in results:
        if _called(d, thresholds()) != p.duplicate:
            out.append(f"- {_pair_name(p)} ({'duplicate' if p.duplicate else 'distinct'}): {_describe(d)}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=PHOTOS_DIR, help="folder of source photos")
    parser.add_argument("--no-probes", action="store_true", help="skip the probes beyond the labelled set")
    args = parser.parse_args()
    labelled = build_labelled_set(args.photos)
    results, elapsed = measure(labelled)
    print(report(labelled, results, elapsed))
    if not args.no_probes:
        probes = build_labelled_set(args.photos, edits=PROBES, edit_pairs=(), other_photos=False)
        print(probe_report(measure(probes)[0]))


if __name__ == "__main__":
    main()
