"""Collage layouts and composition: pure functions over PIL images (no Django, no storage).

A layout is drawn as a small grid of letters, one letter per tile: "A" is the hero (the most liked
picture), "B" the next one, and so on. Every letter must fill a rectangle of cells. The grid is
spread evenly over the canvas with the same gutter between tiles and around the edge, so tiles
spanning several cells line up with their neighbours. Every tile is the centre crop of its
picture at exactly the tile's size (the image-server rule `WxH!`), never a distortion.

Changing a template, a size, the gutter or the background changes the pictures people see:
bump LAYOUT_VERSION so every album's fingerprint changes and its collage is rebuilt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO

from PIL import Image

from everhash.lib.images import encode_jpeg, parse_spec, render

LAYOUT_VERSION = 1
MAX_PICTURES = 16
GUTTER = 6
BACKGROUND = (30, 30, 32)
# Stored renditions fit 2048x2048; a bigger "rendition" is not one of ours and is not decoded.
MAX_SOURCE_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Box:
    """Where one tile goes on the canvas, in pixels."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Format:
    name: str
    width: int
    height: int
    templates: dict[int, tuple[str, ...]]

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


# The share image (OpenGraph previews are 1200x630): the hero on the left, the others around it.
LANDSCAPE = Format(
    "landscape",
    1200,
    630,
    {
        1: ("A",),
        2: ("AB",),
        3: (
            "AAB",
            "AAC",
        ),
        4: (
            "AAABB",
            "AAACD",
        ),
        5: (
            "AABC",
            "AADE",
        ),
        6: (
            "AAB",
            "AAC",
            "DEF",
        ),
        7: (
            "AABC",
            "AADE",
            "AAFG",
        ),
        8: (
            "AAAB",
            "AAAC",
            "AAAD",
            "EFGH",
        ),
        9: (
            "AABC",
            "AADE",
            "FGHI",
        ),
        10: (
            "AAABCD",
            "AAAEFG",
            "AAAHIJ",
        ),
        11: (
            "AABC",
            "AADE",
            "AAFG",
            "HIJK",
        ),
        12: (
            "AAABC",
            "AAADE",
            "AAAFG",
            "HIJKL",
        ),
        13: (
            "AAABCD",
            "AAAEFG",
            "HIJKLM",
        ),
        14: (
            "AABCD",
            "AABEF",
            "AAGHI",
            "JKLMN",
        ),
        15: (
            "AABCD",
            "AAEFG",
            "AAHIJ",
            "KLMNO",
        ),
        16: (
            "AAABCD",
            "AAAEFG",
            "AAAHIJ",
            "KLMNOP",
        ),
    },
)

# The square cover (album pages, index cards): the hero on top, the others below and beside it.
SQUARE = Format(
    "square",
    1080,
    1080,
    {
        1: ("A",),
        2: (
            "A",
            "B",
        ),
        3: (
            "AA",
            "AA",
            "BC",
        ),
        4: (
            "AAA",
            "AAA",
            "BCD",
        ),
        5: (
            "AAAA",
            "AAAA",
            "AAAA",
            "BCDE",
        ),
        6: (
            "AAB",
            "AAC",
            "DEF",
        ),
        7: (
            "AAAB",
            "AAAC",
            "AAAD",
            "EEFG",
        ),
        8: (
            "AAAB",
            "AAAC",
            "AAAD",
            "EFGH",
        ),
        9: (
            "AAB",
            "AAC",
            "DEF",
            "GHI",
        ),
        10: (
            "AAAAB",
            "AAAAC",
            "AAAAD",
            "AAAAE",
            "FGHIJ",
        ),
        11: (
            "AAAB",
            "AAAC",
            "DEFG",
            "HIJK",
        ),
        12: (
            "AAAB",
            "AAAC",
            "AAAD",
            "EFGH",
            "IJKL",
        ),
        13: (
            "AABC",
            "AADE",
            "FGHI",
            "JKLM",
        ),
        14: (
            "AAAAB",
            "AAAAC",
            "AAAAD",
            "EFGHI",
            "JKLMN",
        ),
        15: (
            "AAABC",
            "AAADE",
            "FGHIJ",
            "KLMNO",
        ),
        16: (
            "AAAB",
            "AAAC",
            "AAAD",
            "EFGH",
            "IJKL",
            "MNOP",
        ),
    },
)

FORMATS = (LANDSCAPE, SQUARE)


def _cell_spans(template: tuple[str, ...]) -> list[tuple[int, int, int, int]]:
    """(first column, first row, column after, row after) of each letter, in rank order."""
    columns = len(template[0])
    if any(len(row) != columns for row in template):
        raise ValueError(f"Rows of different lengths in {template}")
    letters = sorted({letter for row in template for letter in row})
    expected = [chr(ord("A") + i) for i in range(len(letters))]
    if letters != expected:
        raise ValueError(f"Letters of {template} must be A, B, C... without a gap")
    spans = []
    for letter in letters:
        cells = [(x, y) for y, row in enumerate(template) for x, char in enumerate(row) if char == letter]
        x0, y0 = min(x for x, _ in cells), min(y for _, y in cells)
        x1, y1 = max(x for x, _ in cells) + 1, max(y for _, y in cells) + 1
        if len(cells) != (x1 - x0) * (y1 - y0):
            raise ValueError(f"Tile {letter} of {template} is not a rectangle")
        spans.append((x0, y0, x1, y1))
    return spans


def _edges(length: int, cells: int) -> list[int]:
    """Where each cell starts along one side; cell i ends GUTTER before edge i + 1."""
    usable = length - GUTTER * (cells + 1)
    return [GUTTER + i * GUTTER + i * usable // cells for i in range(cells + 1)]


def layout(fmt: Format, count: int) -> tuple[Box, ...]:
    """The tiles of `count` pictures on `fmt`, most important first."""
    if count not in fmt.templates:
        raise ValueError(f"A {fmt.name} collage holds 1 to {max(fmt.templates)} pictures, not {count}")
    template = fmt.templates[count]
    xs = _edges(fmt.width, len(template[0]))
    ys = _edges(fmt.height, len(template))
    return tuple(
        Box(xs[x0], ys[y0], xs[x1] - GUTTER - xs[x0], ys[y1] - GUTTER - ys[y0])
        for x0, y0, x1, y1 in _cell_spans(template)
    )


def tile_sizes(count: int) -> list[list[tuple[int, int]]]:
    """For each position of a `count`-picture collage, the sizes its picture is drawn at (one per format)."""
    per_format = [layout(fmt, count) for fmt in FORMATS]
    return [[(box.width, box.height) for box in boxes] for boxes in zip(*per_format, strict=True)]


def compose(fmt: Format, images: Sequence[Image.Image]) -> Image.Image:
    """Lay out `images` (most important first) on a `fmt` canvas, each tile a centre crop."""
    canvas = Image.new("RGB", fmt.size, BACKGROUND)
    for image, box in zip(images, layout(fmt, len(images)), strict=True):
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        canvas.paste(render(rgb, parse_spec(f"{box.width}x{box.height}!")), (box.x, box.y))
    return canvas


# The index's tiles show the square cover at about 200 CSS pixels: 400x400 is sharp at 2x and
# a fraction of the 1080x1080 square's bytes.
SMALL_SQUARE = 400


def encode(images: Sequence[Image.Image]) -> dict[str, bytes]:
    """The JPEG of every format, by format name, and the small square ("square-small"): the same
    images always give the same bytes."""
    composed = {fmt.name: compose(fmt, images) for fmt in FORMATS}
    jpegs = {name: encode_jpeg(image) for name, image in composed.items()}
    small = composed[SQUARE.name].resize((SMALL_SQUARE, SMALL_SQUARE), Image.Resampling.LANCZOS)
    jpegs["square-small"] = encode_jpeg(small)
    return jpegs


def open_rendition(data: bytes, *, sizes: Sequence[tuple[int, int]]) -> Image.Image:
    """Decode a stored JPEG rendition only as finely as the biggest of `sizes` (tile sizes) needs.

    A JPEG decodes at 1/2, 1/4 or 1/8 scale for a fraction of the work (Image.draft), never
    below the size asked for, so the shortcut never makes a tile upscale. Damaged data raises
    Pillow's own errors (OSError, ValueError, DecompressionBombError).
    """
    image = Image.open(BytesIO(data), formats=("JPEG",))
    if image.width * image.height > MAX_SOURCE_PIXELS:
        raise ValueError(f"{image.width}x{image.height} is bigger than any rendition")
    scale = max(max(width / image.width, height / image.height) for width, height in sizes)
    if scale < 1:
        image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


for _fmt in FORMATS:
    # A template mistake fails at import, not in the middle of a cron run.
    if sorted(_fmt.templates) != list(range(1, MAX_PICTURES + 1)):
        raise ValueError(f"{_fmt.name} needs a template for 1 to {MAX_PICTURES} pictures")
    for _count, _template in _fmt.templates.items():
        if len(_cell_spans(_template)) != _count:
            raise ValueError(f"{_fmt.name} template {_count} has {len(_cell_spans(_template))} tiles")
