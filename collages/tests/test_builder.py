from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from collages import builder
from collages.builder import FORMATS, GUTTER, LANDSCAPE, MAX_PICTURES, SQUARE, compose, layout
from everhash.lib.images import parse_spec, render

# Landscape, portrait, square, panorama and tiny sources, so every tile crops something.
SOURCE_SIZES = [(1024, 768), (576, 1024), (800, 800), (1024, 341), (90, 60), (1000, 872), (451, 300), (640, 427)]


def gradient(size: tuple[int, int], blue: int) -> Image.Image:
    """Red grows left to right, green top to bottom: a pixel's colour says where it came from."""
    width, height = size
    red = Image.linear_gradient("L").rotate(90).resize(size)
    green = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", (red, green, Image.new("L", size, blue)))


def sources(count: int) -> list[Image.Image]:
    return [gradient(SOURCE_SIZES[i % len(SOURCE_SIZES)], blue=10 + 15 * i) for i in range(count)]


def expected_colour(source: Image.Image, box: builder.Box, u: float, v: float) -> tuple[float, float]:
    """Red and green expected at (u, v) (0..1 across the tile) if the tile is the centre crop of `source`."""
    scale = max(box.width / source.width, box.height / source.height)
    seen_width, seen_height = box.width / scale, box.height / scale
    x = (source.width - seen_width) / 2 + u * seen_width
    y = (source.height - seen_height) / 2 + v * seen_height
    return 255 * x / source.width, 255 * y / source.height


def within(covered: np.ndarray, distance: int) -> np.ndarray:
    """Pixels at most `distance` away (along x and y) from a covered one: a square dilation."""
    near = covered.copy()
    for shift in range(1, distance + 1):
        near[:, shift:] |= covered[:, :-shift]
        near[:, :-shift] |= covered[:, shift:]
    result = near.copy()
    for shift in range(1, distance + 1):
        result[shift:, :] |= near[:-shift, :]
        result[:-shift, :] |= near[shift:, :]
    return result


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda fmt: fmt.name)
def test_every_count_has_a_layout_that_fills_the_canvas_without_overlaps(fmt):
    for count in range(1, MAX_PICTURES + 1):
        boxes = layout(fmt, count)
        assert len(boxes) == count
        mask = Image.new("L", fmt.size, 0)
        for box in boxes:
            assert box.width > 0 and box.height > 0
            assert box.x >= GUTTER and box.y >= GUTTER
            assert box.x + box.width <= fmt.width - GUTTER and box.y + box.height <= fmt.height - GUTTER
            mask.paste(255, (box.x, box.y, box.x + box.width, box.y + box.height))
        areas = [box.width * box.height for box in boxes]
        assert mask.histogram()[255] == sum(areas), f"{fmt.name} {count}: tiles overlap"
        # Nothing but gutters is left uncovered: every pixel is within a gutter's width of a tile.
        assert within(np.asarray(mask) > 0, GUTTER).all(), f"{fmt.name} {count}: a hole in the layout"
        # The hero (the most liked picture) gets the biggest tile.
        assert areas[0] == max(areas)


@pytest.mark.parametrize("count", [0, MAX_PICTURES + 1])
def test_there_is_no_layout_for_no_pictures_or_too_many(count):
    with pytest.raises(ValueError, match="1 to 16 pictures"):
        layout(LANDSCAPE, count)
    with pytest.raises(ValueError):
        compose(SQUARE, sources(count))


@pytest.mark.parametrize("count", [1, 2, 3, 7, MAX_PICTURES])
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda fmt: fmt.name)
def test_every_tile_is_the_centre_crop_of_its_picture(fmt, count):
    images = sources(count)
    canvas = compose(fmt, images)

    assert canvas.size == ((1200, 630) if fmt is LANDSCAPE else (1080, 1080))
    assert canvas.mode == "RGB"
    for source, box in zip(images, layout(fmt, count), strict=True):
        tile = canvas.crop((box.x, box.y, box.x + box.width, box.y + box.height))
        # Exactly what the image server's WxH! rule gives...
        assert tile.tobytes() == render(source, parse_spec(f"{box.width}x{box.height}!")).tobytes()
        # ...and that is a centre crop at one scale: sample where each point must come from.
        for u, v in [(0.5, 0.5), (0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]:
            x, y = int(u * box.width), int(v * box.height)
            red, green, blue = tile.getpixel((x, y))
            want_red, want_green = expected_colour(source, box, (x + 0.5) / box.width, (y + 0.5) / box.height)
            assert abs(red - want_red) <= 4 and abs(green - want_green) <= 4, (fmt.name, count, box, u, v)
            assert blue == source.getpixel((0, 0))[2]
        # The gutter left of and above every tile is background.
        assert canvas.getpixel((box.x - 1, box.y + box.height // 2)) == builder.BACKGROUND
        assert canvas.getpixel((box.x + box.width // 2, box.y - 1)) == builder.BACKGROUND


def test_greyscale_pictures_become_rgb_tiles():
    grey = Image.linear_gradient("L").resize((640, 480))
    canvas = compose(LANDSCAPE, [grey, gradient((640, 480), blue=90)])
    box = layout(LANDSCAPE, 2)[0]
    red, green, blue = canvas.getpixel((box.x + box.width // 2, box.y + box.height // 2))
    assert red == green == blue


def test_the_same_pictures_give_the_same_bytes():
    first = builder.encode(sources(7))
    again = builder.encode([image.copy() for image in sources(7)])

    assert set(first) == {"landscape", "square", "square-small"}
    assert first == again
    assert Image.open(BytesIO(first["landscape"])).size == (1200, 630)
    assert Image.open(BytesIO(first["square"])).size == (1080, 1080)
    assert Image.open(BytesIO(first["square-small"])).size == (400, 400)
    assert builder.encode(sources(6)) != first


def test_a_rendition_is_decoded_only_as_finely_as_its_tiles_need():
    buffer = BytesIO()
    gradient((2048, 1536), blue=40).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()

    small = builder.open_rendition(data, sizes=[(200, 150), (250, 180)])
    full = builder.open_rendition(data, sizes=[(1188, 618)])

    assert small.mode == "RGB"
    assert 250 <= small.width < 1024 and small.height >= 180
    assert full.size == (2048, 1536)


def test_a_damaged_rendition_raises_instead_of_drawing_grey():
    buffer = BytesIO()
    gradient((1024, 768), blue=40).save(buffer, "JPEG")
    with pytest.raises(OSError):
        builder.open_rendition(buffer.getvalue()[:2000], sizes=[(500, 500)])
    with pytest.raises(OSError):
        builder.open_rendition(b"not an image", sizes=[(500, 500)])


def test_a_template_that_is_not_made_of_rectangles_is_refused():
    with pytest.raises(ValueError, match="not a rectangle"):
        builder._cell_spans(("AAB", "ABB"))
    with pytest.raises(ValueError, match="without a gap"):
        builder._cell_spans(("AC",))
