"""The one catalogue of photo edits: what a platform does to a photo (same photo) and what a person
does to it (a different photo, by the product's definition in docs/dedupe.md).

Used by the dedupe labelled set (bench/dedupe_eval.py), its tests (pictures/tests/test_dedupe.py) and
the sample-data generator (tweets/sample_data/make_pages.py). The sample source's own operations
(`tweets.sample.OPS`, which `make run` renders at download time) are registered here under their names,
so there is one definition of each edit.

An edit name chains steps with "+": ``"resize-50+webp-q75"`` resizes then re-encodes as WebP;
``"mirror+jpeg-q70"`` is a mirror image re-encoded. `render()` turns a chain into file bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from pictures.dedupe import UNCHANGED_SHARE, moved_share
from tweets.sample import OPS as SAMPLE_OPS


@dataclass(frozen=True)
class Edit:
    """One step. ``keeps_photo``: the result is the same photo (a duplicate) by the product's definition."""

    name: str
    apply: Callable[[Image.Image], Image.Image]
    keeps_photo: bool
    # Changes nothing on a greyscale photo (the result has the same pixels, so it is the same photo).
    colour_only: bool = False
    # How a caption says it ("in sepia"); only for edits that change the photo.
    words: str = ""
    # Steps that end in a file (re-encodes, a platform's resize): the bytes they write.
    to_bytes: Callable[[Image.Image], bytes] | None = None


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """File bytes with no metadata: none is passed, and none the image still carries from the file it was
    read from (Pillow writes ``info["icc_profile"]`` into a PNG unasked; a photo's profile on an original
    and not on its copies would make them different colours)."""
    bare = image.copy()
    bare.info.clear()
    out = io.BytesIO()
    bare.save(out, fmt, **options)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    """RGB or L pixels of file bytes, fully loaded."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert("L" if image.mode in ("L", "LA", "I", "I;16") else "RGB")


def _file_step(name: str, to_bytes: Callable[[Image.Image], bytes]) -> Edit:
    return Edit(name, lambda im: decode(to_bytes(im)), True, to_bytes=to_bytes)


def _encoding(name: str, fmt: str, **options: object) -> Edit:
    return _file_step(name, lambda im: encode(im, fmt, **options))


def scaled(image: Image.Image, factor: float, resample: Image.Resampling = Image.Resampling.LANCZOS) -> Image.Image:
    """A platform's resize before it recompresses: Lanczos unless told, to the size rounded to whole pixels."""
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, resample)


RESIZE_QUALITY = 85


def _resize(name: str, factor: float) -> Edit:
    """What a platform does to an upload: scale down (Lanczos), then recompress as JPEG q85."""

    def to_bytes(image: Image.Image) -> bytes:
        return encode(scaled(image, factor), "JPEG", quality=RESIZE_QUALITY)

    return _file_step(name, to_bytes)


def _crop(image: Image.Image, *, centre: bool, keep: float = 0.8) -> Image.Image:
    width, height = round(image.width * keep), round(image.height * keep)
    left, top = ((image.width - width) // 2, (image.height - height) // 2) if centre else (0, 0)
    return image.crop((left, top, left + width, top + height))


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


# Captions of the sample source's operations (tweets/sample_data/make_pages.py writes them into posts).
SAMPLE_WORDS = {
    "greyscale": "in black and white",
    "sepia": "in sepia",
    "brighten": "brightened",
    "darken": "darkened",
    "contrast-up": "with more contrast",
    "contrast-down": "with faded contrast",
    "blur": "blurred",
    "sharpen": "sharpened",
    "invert": "with inverted colours",
    "mirror": "mirrored",
    "rotate90": "turned a quarter clockwise",
    "rotate180": "upside down",
    "rotate270": "turned a quarter anticlockwise",
    "crop-centre": "cropped to the centre",
    "crop-top-left": "cropped to the top left",
    "crop-top-right": "cropped to the top right",
    "crop-bottom-left": "cropped to the bottom left",
    "crop-bottom-right": "cropped to the bottom right",
}

_EDITS: list[Edit] = [
    # Same photo: re-encodes, format changes and resizes, as platforms do to uploads.
    *(_encoding(f"jpeg-q{q}", "JPEG", quality=q) for q in (95, 90, 85, 80, 70, 60, 50, 40, 30, 20)),
    *(_encoding(f"webp-q{q}", "WEBP", quality=q) for q in (90, 80, 75, 50)),
    _encoding("png", "PNG"),
    *(_resize(f"resize-{p}", p / 100) for p in (75, 60, 50, 33, 25, 12, 10)),
    Edit("resize-50-nearest", lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2)), 0), True),
    Edit("resize-50-bicubic", lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2)), 3), True),
    # Other platforms' filters, softer than Lanczos (a step of its own: a chain adds the re-encode).
    *(
        Edit(f"resize-{p}-{name}", lambda im, p=p, f=f: scaled(im, p / 100, f), True)
        for p in (50, 25, 12)
        for name, f in (("bilinear", Image.Resampling.BILINEAR), ("box", Image.Resampling.BOX))
    ),
    Edit("resize-12-bicubic", lambda im: scaled(im, 0.12, Image.Resampling.BICUBIC), True),
    # A different photo: the sample source's operations (one definition, used at download time too).
    *(
        Edit(name, lambda im, op=op: op(_rgb(im)), False, colour_only=name == "greyscale", words=words)
        for name, words in SAMPLE_WORDS.items()
        for op in [SAMPLE_OPS[name]]
    ),
    # ... and graded versions of them, down to slight edits.
    *(
        Edit(f"brightness{p:+d}", lambda im, p=p: ImageEnhance.Brightness(im).enhance(1 + p / 100), False)
        for p in (30, 10, -10, -30)
    ),
    *(
        Edit(f"contrast{p:+d}", lambda im, p=p: ImageEnhance.Contrast(im).enhance(1 + p / 100), False)
        for p in (30, 10, -10, -30)
    ),
    Edit("saturation+30", lambda im: ImageEnhance.Color(_rgb(im)).enhance(1.3), False, colour_only=True),
    Edit("gamma-0.8", lambda im: im.point([round(255 * (v / 255) ** 0.8) for v in range(256)] * len(im.mode)), False),
    *(Edit(f"blur-r{r}", lambda im, r=r: im.filter(ImageFilter.GaussianBlur(r)), False) for r in (1, 2, 3)),
    Edit("sharpen-r2", lambda im: im.filter(ImageFilter.UnsharpMask(radius=2, percent=300, threshold=0)), False),
    Edit("sharpen-soft", lambda im: im.filter(ImageFilter.UnsharpMask(radius=1, percent=150, threshold=0)), False),
    Edit("rotate-90", lambda im: im.transpose(Image.Transpose.ROTATE_90), False),
    Edit("rotate-3", lambda im: im.rotate(3, Image.Resampling.BICUBIC), False),
    Edit("crop-centre-80", lambda im: _crop(im, centre=True), False),
    Edit("crop-corner-80", lambda im: _crop(im, centre=False), False),
    Edit("crop-centre-95", lambda im: _crop(im, centre=True, keep=0.95), False),
]
EDITS: dict[str, Edit] = {edit.name: edit for edit in _EDITS}


def steps(chain: str) -> list[Edit]:
    """``"rotate90+brightness+30"`` -> [rotate90, brightness+30] (step names contain "+" too)."""
    found, rest = [], chain
    names = sorted(EDITS, key=len, reverse=True)
    while rest:
        name = next((n for n in names if rest.startswith(n) and rest[len(n) :][:1] in ("", "+")), None)
        if name is None:
            raise KeyError(f"No edit at {rest!r} in {chain!r}")
        found.append(EDITS[name])
        rest = rest[len(name) :].removeprefix("+")
    return found


def keeps_photo(chain: str, *, greyscale: bool = False, unchanged: Collection[str] = ()) -> bool:
    """Whether a chain of steps leaves the same photo (a duplicate of the original)."""
    return not changes(chain, greyscale=greyscale, unchanged=unchanged)


def changes(chain: str, *, greyscale: bool = False, unchanged: Collection[str] = ()) -> list[str]:
    """The steps of a chain that make a different photo, in order. Two chains with the same changes
    are the same photo; colour-only edits change nothing on a greyscale photo, and the edits named in
    ``unchanged`` (see `unchanged_edits`) change nothing on this one."""
    if chain in ("", "original"):
        return []
    return [
        s.name
        for s in steps(chain)
        if not s.keeps_photo and not (greyscale and s.colour_only) and s.name not in unchanged
    ]


def unchanged_edits(image: Image.Image, names: Iterable[str]) -> frozenset[str]:
    """The edits among ``names`` that do not alter ``image``: the product's duplicate is "the same photo
    without alteration", so an edit whose result has the original's pixels (to within rounding:
    pictures.dedupe.UNCHANGED_SHARE, the rule ingest applies to two lossless files) makes no different
    photo, e.g. a blur of a smooth gradient, greyscale of a grey picture. Edits that change the size are
    never unchanged."""
    original = np.asarray(_rgb(image))
    found = set()
    for name in names:
        edited = EDITS[name].apply(image)
        if edited.size != image.size:
            continue
        if moved_share(np.asarray(_rgb(edited)), original) <= UNCHANGED_SHARE:
            found.add(name)
    return frozenset(found)


def render(image: Image.Image, chain: str) -> bytes:
    """File bytes of ``image`` after a chain: the last encoding step's bytes, else lossless PNG."""
    if chain in ("", "original"):
        return encode(image, "PNG")
    done = steps(chain)
    for step in done[:-1]:
        image = step.apply(image)
    last = done[-1]
    if last.to_bytes is not None:
        return last.to_bytes(image)
    return encode(last.apply(image), "PNG")


def photo_words(chain: Sequence[str]) -> str:
    """How a caption describes a sample variant's operations ("mirrored, in sepia")."""
    return ", ".join(EDITS[name].words for name in chain)
