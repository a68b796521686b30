"""Untrusted image bytes and renditions, with real files built by Pillow in each test."""

from __future__ import annotations

import base64
import struct
import warnings
import zlib
from io import BytesIO

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageChops, ImageCms, ImageFile, ImageStat, PngImagePlugin

from everhash.lib import images
from everhash.lib.images import (
    RENDITIONS,
    ImageRejected,
    Spec,
    encode_jpeg,
    make_renditions,
    open_for_renditions,
    open_verified,
    parse_spec,
    render,
)
from everhash.testing.builders import SAMPLE_PHOTOS

LIMIT = 40_000_000
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    out = BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def bands(width: int, height: int, colours=(RED, GREEN, BLUE)) -> Image.Image:
    """Vertical bands of flat colour, left to right, so crops and rotations are visible in pixels."""
    image = Image.new("RGB", (width, height))
    step = width / len(colours)
    for i, colour in enumerate(colours):
        image.paste(colour, (round(i * step), 0, round((i + 1) * step), height))
    return image


def photo(width: int, height: int) -> Image.Image:
    """Fine detail and smooth gradients, like a photo, so resampling mistakes would show."""
    detail = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 0.8, 1.2), 60)
    down = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (detail, down, down.transpose(Image.Transpose.FLIP_TOP_BOTTOM)))


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares a size but holds a few bytes of pixels, written by hand."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def close_to(pixel: tuple[int, ...], colour: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


@pytest.fixture(params=["open_verified", "open_for_renditions", "open_for_renditions-streamed"])
def opener(request, monkeypatch):
    """Every way in: the full decode (open_verified) and the one ingest uses (open_for_renditions),
    also with every PNG streamed through libvips as large ones are; each guarantee holds for each."""
    if request.param.endswith("-streamed"):
        monkeypatch.setattr(images, "STREAM_PIXELS", 0)
    return open_verified if request.param == "open_verified" else open_for_renditions


def reject_reason(opener, data: bytes, **limits) -> str:
    with pytest.raises(ImageRejected) as caught:
        opener(data, **({"max_pixels": LIMIT} | limits))
    assert str(caught.value)  # plain English for the fetch log
    return caught.value.reason


def gif_frames(count: int, size: tuple[int, int] = (32, 32)) -> bytes:
    frames = [Image.new("P", size, i % 200) for i in range(count)]
    for frame in frames:
        frame.putpalette([value for i in range(256) for value in (i, 255 - i, 0)])
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=20)


# Opening ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("JPEG", "RGB"), ("JPEG", "L"), ("JPEG", "CMYK"), ("PNG", "RGB"), ("PNG", "P"), ("GIF", "P"), ("WEBP", "RGB")],
)
def test_it_opens_each_allowed_format_as_rgb(fmt, mode, opener):
    image = bands(120, 80).convert(mode)
    verified = opener(encode(image, fmt), max_pixels=LIMIT)
    assert (verified.format, verified.width, verified.height) == (fmt, 120, 80)
    assert verified.image.mode == "RGB"
    assert close_to(verified.image.getpixel((60, 40)), image.convert("RGB").getpixel((60, 40)), tolerance=40)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PPM", "ICO", "PCX", "TGA"])
def test_it_rejects_image_formats_outside_the_allowlist(fmt, opener):
    assert reject_reason(opener, encode(bands(64, 64), fmt)) == "format"


@pytest.mark.parametrize("data", [b"<!doctype html><html><body>Not found</body></html>", b"hello", b"\x00" * 100])
def test_it_rejects_bytes_that_are_not_an_image(data, opener):
    assert reject_reason(opener, data) == "format"


def test_it_rejects_empty_bytes(opener):
    assert reject_reason(opener, b"") == "empty"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF"])
def test_it_rejects_a_file_cut_in_half(fmt, opener):
    data = encode(photo(400, 300), fmt)
    assert reject_reason(opener, data[: len(data) // 2]) == "truncated"


def test_it_rejects_a_jpeg_cut_inside_its_header(opener):
    assert reject_reason(opener, encode(photo(400, 300), "JPEG")[:40]) == "truncated"


def test_a_144_megapixel_header_is_rejected_before_any_decoding(opener):
    # Decoding would fail as "truncated": there are no pixels, so the header check came first.
    assert reject_reason(opener, png_header(12000, 12000)) == "too_many_pixels"


@pytest.mark.parametrize(("size", "limits"), [((8000, 8000), {}), ((12001, 10), {}), ((900, 10), {"max_side": 800})])
def test_it_applies_its_own_pixel_and_side_limits_from_the_header(size, limits, opener):
    assert reject_reason(opener, png_header(*size), **limits) == "too_many_pixels"


def test_a_large_png_inside_the_limits_is_accepted(opener):
    verified = opener(encode(Image.new("L", (8000, 3000), 200), "PNG"), max_pixels=LIMIT)
    assert (verified.width, verified.height) == (8000, 3000)


def test_its_limits_hold_with_pillows_own_limit_switched_off(monkeypatch, opener):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert reject_reason(opener, png_header(12000, 12000)) == "too_many_pixels"


def test_pillows_decompression_bomb_warning_is_an_error_even_under_a_generous_limit(opener):
    # 144 MP is inside these limits, so only Pillow's warning (made an error) can stop it.
    before = list(warnings.filters)
    assert reject_reason(opener, png_header(12000, 12000), max_pixels=200_000_000) == "too_many_pixels"
    assert warnings.filters == before


def test_it_rejects_a_png_text_chunk_that_inflates_past_pillows_limit(opener):
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "a" * 2_000_000, zip=True)  # a few kilobytes that inflate to 2 MB
    assert reject_reason(opener, encode(bands(16, 16), "PNG", pnginfo=info)) == "bomb"


def test_it_refuses_to_run_if_truncated_images_were_switched_on(monkeypatch, opener):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError):
        opener(encode(bands(16, 16), "PNG"), max_pixels=LIMIT)


def test_a_500_frame_gif_yields_its_first_frame(opener):
    data = gif_frames(500)
    assert Image.open(BytesIO(data)).n_frames == 500
    verified = opener(data, max_pixels=LIMIT)
    assert (verified.format, verified.width, verified.height) == ("GIF", 32, 32)
    assert verified.image.getpixel((5, 5)) == (0, 255, 0)  # palette entry 0 of frame 0


def test_frames_after_the_first_are_never_read(opener):
    data = gif_frames(500)[:-3000]
    with pytest.raises((OSError, EOFError, struct.error)):  # walking the frames would hit the cut
        Image.open(BytesIO(data)).seek(499)
    verified = opener(data, max_pixels=LIMIT)
    assert verified.image.getpixel((5, 5)) == (0, 255, 0)


def test_an_animated_webp_yields_its_first_frame(opener):
    frames = [Image.new("RGB", (40, 30), colour) for colour in (RED, GREEN, BLUE)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    verified = opener(data, max_pixels=LIMIT)
    assert verified.image.getpixel((20, 15)) == RED


def test_a_multi_picture_jpeg_from_a_phone_counts_as_jpeg(opener):
    data = encode(bands(60, 40, (RED,)), "MPO", save_all=True, append_images=[bands(60, 40, (BLUE,))])
    verified = opener(data, max_pixels=LIMIT)
    assert verified.format == "JPEG"
    assert close_to(verified.image.getpixel((30, 20)), RED)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_pixels_in_a_png_become_white(mode, opener):
    image = bands(60, 20).convert("RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 20, 20))
    verified = opener(encode(image.convert(mode), "PNG"), max_pixels=LIMIT)
    assert verified.image.getpixel((5, 5)) == WHITE
    assert verified.image.getpixel((50, 10)) != WHITE


def test_the_transparent_colour_of_a_gif_becomes_white(opener):
    image = bands(60, 20).quantize(4)
    transparent = image.getpixel((5, 5))
    verified = opener(encode(image, "GIF", transparency=transparent), max_pixels=LIMIT)
    assert verified.image.getpixel((5, 5)) == WHITE
    assert close_to(verified.image.getpixel((30, 10)), GREEN)


def test_a_16_bit_greyscale_png_keeps_its_mid_tones(opener):
    data = encode(Image.new("I;16", (20, 20), 32768), "PNG")
    assert close_to(opener(data, max_pixels=LIMIT).image.getpixel((10, 10)), (128, 128, 128), tolerance=2)


def jpeg_with_metadata(image: Image.Image, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PhoneCam"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 24.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    return encode(image, "JPEG", exif=exif, comment=b"taken at home", xmp=xmp)


def test_exif_orientation_is_applied(opener):
    # Orientation 6: the camera was turned clockwise, so the left of the stored pixels is the top.
    verified = opener(jpeg_with_metadata(bands(300, 200, (RED, BLUE))), max_pixels=LIMIT)
    assert (verified.width, verified.height) == (200, 300)
    assert close_to(verified.image.getpixel((100, 20)), RED)
    assert close_to(verified.image.getpixel((100, 280)), BLUE)


def test_the_verified_image_carries_no_metadata(opener):
    image = opener(jpeg_with_metadata(bands(300, 200)), max_pixels=LIMIT).image
    assert image.info == {}
    assert dict(image.getexif()) == {}


# Colour profiles: what leaves is sRGB, as a JPEG without a profile is shown ------------------------

with Image.open(SAMPLE_PHOTOS / "rocket.jpg") as _rocket:
    ADOBE_RGB = _rocket.info["icc_profile"]  # the profile a camera embedded: Adobe RGB (1998)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
# Adobe RGB (1998) to CIE XYZ, and CIE XYZ to linear sRGB (both D65): the two standards' own matrices.
ADOBE_TO_XYZ = np.array(
    [[0.5767309, 0.1855540, 0.1881852], [0.2973769, 0.6273491, 0.0752741], [0.0270343, 0.0706872, 0.9911085]]
)
XYZ_TO_SRGB = np.array(
    [[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560], [0.0556434, -0.2040259, 1.0572252]]
)
TERRACOTTA, VIOLET = (200, 120, 60), (90, 60, 200)


def adobe_rgb_in_srgb(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """What a colour-managed browser shows for these Adobe RGB values, from the standards' numbers
    (gamma 563/256, the primaries, the sRGB curve), not from littleCMS."""
    linear = XYZ_TO_SRGB @ ADOBE_TO_XYZ @ ((np.array(colour) / 255) ** (563 / 256))
    linear = np.clip(linear, 0, 1)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return tuple(int(round(value * 255)) for value in encoded)


def tagged(fmt: str, profile: bytes, **params) -> bytes:
    return encode(bands(300, 200, (TERRACOTTA, VIOLET)), fmt, icc_profile=profile, **params)


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("JPEG", {"quality": 95}), ("PNG", {}), ("WEBP", {"lossless": True})],
    ids=["jpeg", "png", "webp"],
)
def test_a_picture_with_another_colour_profile_is_converted_to_srgb(fmt, params, opener):
    # Phones embed Display P3, cameras Adobe RGB: read as sRGB, their colours would look washed out.
    verified = opener(tagged(fmt, ADOBE_RGB, **params), max_pixels=LIMIT)
    for x, colour in [(60, TERRACOTTA), (240, VIOLET)]:
        expected = adobe_rgb_in_srgb(colour)
        assert not close_to(colour, expected, tolerance=8)  # the conversion is visible...
        assert close_to(verified.image.getpixel((x, 100)), expected, tolerance=3)  # ...and made
    assert verified.image.info == {}


@pytest.mark.parametrize(
    "profile", [SRGB, b"not an ICC profile at all", ADOBE_RGB[:100]], ids=["srgb", "garbage", "cut"]
)
def test_an_srgb_or_unreadable_profile_leaves_the_pixels_as_decoded(profile, opener):
    # An unreadable profile is ignored, as a browser ignores it: the picture is kept, its pixels taken as sRGB.
    untagged = opener(encode(bands(300, 200, (TERRACOTTA, VIOLET)), "PNG"), max_pixels=LIMIT)
    verified = opener(tagged("PNG", profile), max_pixels=LIMIT)
    assert verified.image.tobytes() == untagged.image.tobytes()


@pytest.mark.parametrize("streamed", [False, True], ids=["pillow", "streamed"])
def test_a_converted_picture_also_carries_its_files_own_numbers(streamed, monkeypatch):
    # What dedupe compares with copies that dropped the profile unconverted (pictures/dedupe.py).
    if streamed:
        monkeypatch.setattr(images, "STREAM_PIXELS", 0)
    untagged = open_for_renditions(encode(bands(300, 200, (TERRACOTTA, VIOLET)), "PNG"), max_pixels=LIMIT)
    verified = open_for_renditions(tagged("PNG", ADOBE_RGB), max_pixels=LIMIT)
    assert verified.unconverted.image.tobytes() == untagged.image.tobytes()
    assert verified.unconverted.lossless and not verified.lossless
    assert (verified.colour_profile, untagged.colour_profile) == ("Adobe RGB (1998)", "")
    assert untagged.unconverted is None


def test_a_profile_over_the_size_limit_is_not_read(opener, monkeypatch):
    monkeypatch.setattr(images, "MAX_PROFILE_BYTES", len(ADOBE_RGB) - 1)
    untagged = opener(encode(bands(300, 200, (TERRACOTTA, VIOLET)), "PNG"), max_pixels=LIMIT)
    assert opener(tagged("PNG", ADOBE_RGB), max_pixels=LIMIT).image.tobytes() == untagged.image.tobytes()


def test_renditions_of_a_picture_with_another_profile_are_srgb_and_carry_no_profile():
    renditions = make_renditions(open_for_renditions(tagged("JPEG", ADOBE_RGB, quality=95), max_pixels=LIMIT))
    for name, (data, _, _) in renditions.items():
        with Image.open(BytesIO(data)) as image:
            assert "icc_profile" not in image.info
            assert close_to(image.convert("RGB").getpixel((10, image.height // 2)), adobe_rgb_in_srgb(TERRACOTTA), 6), (
                name
            )


# Specs and rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("400x300", Spec(400, 300, crop=False)),
        ("400x300!", Spec(400, 300, crop=True)),
        ("1x1", Spec(1, 1, crop=False)),
        ("4096x4096!", Spec(4096, 4096, crop=True)),
    ],
)
def test_it_parses_size_specs(text, spec):
    assert parse_spec(text) == spec
    assert str(spec) == text


@pytest.mark.parametrize(
    "text",
    ["0x10", "10x", "abc", "5000x10", "10x4097", "10x10!!", " 10x10", "10x10 ", "10x10\n", "10X10", "010x10", "-1x10",
     "", "x", "10x10?", "\uff11\uff10x10"],
)  # fmt: skip
def test_it_rejects_anything_else_as_a_spec(text):
    with pytest.raises(ValueError):
        parse_spec(text)


def test_a_spec_built_in_code_is_bounded_too():
    with pytest.raises(ValueError):
        Spec(0, 10, crop=False)


@pytest.mark.parametrize("size", [(1200, 800), (800, 1200), (300, 200), (50, 900), (400, 400)])
@pytest.mark.parametrize("text", ["200x200!", "400x300!", "1024x100!"])
def test_crop_specs_give_exactly_the_size_asked_for(size, text):
    spec = parse_spec(text)
    assert render(photo(*size), spec).size == (spec.width, spec.height)


def test_crop_specs_keep_the_centre():
    rendered = render(bands(500, 100, (RED, GREEN, GREEN, GREEN, BLUE)), parse_spec("50x50!"))
    assert all(close_to(rendered.getpixel(xy), GREEN) for xy in [(0, 0), (49, 0), (25, 25), (0, 49), (49, 49)])


@pytest.mark.parametrize(
    ("size", "text", "expected"),
    [
        ((300, 200), "1024x1024", (300, 200)),
        ((4000, 1000), "1024x1024", (1024, 256)),
        ((1000, 3000), "400x300", (100, 300)),
        ((2100, 1400), "2048x2048", (2048, 1365)),
        ((1025, 10), "1024x1024", (1024, 10)),
    ],
)
def test_fit_specs_keep_the_aspect_ratio_and_never_upscale(size, text, expected):
    assert render(photo(*size), parse_spec(text)).size == expected


def test_render_hands_back_a_new_image_even_when_nothing_changes():
    image = photo(100, 80)
    assert render(image, parse_spec("1024x1024")) is not image


# Encoding and renditions -----------------------------------------------------------------------


def test_encoding_is_deterministic():
    image = photo(640, 480)
    assert encode_jpeg(image) == encode_jpeg(image.copy())


def test_encoding_drops_a_comment_left_on_the_image():
    image = photo(64, 64)
    image.info["comment"] = b"secret note"
    assert b"secret note" not in encode_jpeg(image)


def test_renditions_have_the_sizes_of_their_specs():
    renditions = make_renditions(open_verified(encode(photo(2500, 1500), "JPEG"), max_pixels=LIMIT))
    sizes = {name: (width, height) for name, (_, width, height) in renditions.items()}
    assert sizes == {"thumb": (200, 200), "square": (400, 400), "medium": (1024, 614), "large": (2048, 1229)}
    for data, width, height in renditions.values():
        assert Image.open(BytesIO(data)).size == (width, height)


def test_renditions_of_a_small_picture_are_not_upscaled_except_the_squares():
    renditions = make_renditions(open_verified(encode(photo(300, 200), "PNG"), max_pixels=LIMIT))
    sizes = {name: (width, height) for name, (_, width, height) in renditions.items()}
    assert sizes == {"thumb": (200, 200), "square": (400, 400), "medium": (300, 200), "large": (300, 200)}


def test_renditions_made_from_a_bigger_rendition_look_like_ones_made_from_the_original():
    verified = open_verified(encode(photo(3000, 2000), "JPEG"), max_pixels=LIMIT)
    renditions = make_renditions(verified)
    for name in ["medium", "square", "thumb"]:
        derived = Image.open(BytesIO(renditions[name][0])).convert("L")
        direct = Image.open(BytesIO(encode_jpeg(render(verified.image, RENDITIONS[name])))).convert("L")
        assert ImageStat.Stat(ImageChops.difference(derived, direct)).mean[0] < 0.5, name


def test_renditions_carry_no_exif_gps_xmp_or_comment():
    verified = open_verified(jpeg_with_metadata(photo(600, 400)), max_pixels=LIMIT)
    for data, _, _ in make_renditions(verified).values():
        assert b"Exif" not in data
        assert b"PhoneCam" not in data
        assert b"taken at home" not in data
        assert b"xmpmeta" not in data
        image = Image.open(BytesIO(data))
        assert dict(image.getexif()) == {}
        assert not {"exif", "comment", "xmp", "icc_profile"} & image.info.keys()


def test_renditions_are_the_same_bytes_every_time():
    data = encode(photo(1200, 900), "JPEG")
    first = make_renditions(open_verified(data, max_pixels=LIMIT))
    assert make_renditions(open_verified(data, max_pixels=LIMIT)) == first


@pytest.mark.parametrize(
    ("size", "spec"), [((223, 167), "200x200!"), ((1000, 872), "292x202!"), ((1411, 1411), "790x618!")]
)
def test_a_crop_whose_centre_rounds_outside_the_image_still_renders(size, spec):
    wanted = parse_spec(spec)
    assert render(Image.new("RGB", size), wanted).size == (wanted.width, wanted.height)


def test_a_png_streamed_through_libvips_is_turned_upright_by_its_exif(monkeypatch):
    # Large PNGs are streamed (never whole in memory), so only an eXIf chunk before the pixels counts.
    monkeypatch.setattr(images, "STREAM_PIXELS", 0)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    verified = open_for_renditions(encode(bands(300, 200, (RED, BLUE)), "PNG", exif=exif), max_pixels=LIMIT)
    assert (verified.width, verified.height) == (200, 300)
    assert close_to(verified.image.getpixel((100, 20)), RED)
    assert close_to(verified.image.getpixel((100, 280)), BLUE)


def test_in_a_browser_a_rendition_shows_the_colours_its_original_shows(browser):
    # Chromium shows the camera's file through its Adobe RGB profile; the rendition has no profile, so
    # it must hold sRGB values already. A JPEG of the same pixels without conversion is the control.
    original = (SAMPLE_PHOTOS / "rocket.jpg").read_bytes()
    rendition = make_renditions(open_for_renditions(original, max_pixels=LIMIT))["medium"]
    assert rendition[1:] == (640, 427)
    with Image.open(BytesIO(original)) as image:
        pixels = image.convert("RGB")
    pixels.info.clear()  # the profile dropped, nothing converted
    pictures = [original, rendition[0], encode(pixels, "JPEG", quality=95)]
    style = "display:block;width:640px;height:427px"
    images_html = "".join(
        f'<img style="{style}" src="data:image/jpeg;base64,{base64.b64encode(d).decode()}">' for d in pictures
    )
    context = browser.new_context(viewport={"width": 640, "height": 427 * len(pictures)})
    try:
        page = context.new_page()
        page.set_content(f'<body style="margin:0">{images_html}</body>')
        shot = np.asarray(Image.open(BytesIO(page.screenshot())).convert("RGB"), np.float32)
    finally:
        context.close()
    shown, ours, control = (shot[427 * i : 427 * (i + 1)] for i in range(3))
    assert np.mean(np.abs(ours - shown)) < 4.5  # JPEG q85's own change; 3.3 when written
    assert np.mean(np.abs(control - shown)) > 6  # 7.0: the washed-out colours of a dropped profile


# The JPEG's quantisation table (dedupe's JPEG test) -------------------------------------------


def test_a_jpeg_at_its_own_size_carries_its_luma_quantisation_table():
    data = encode(bands(300, 200), "JPEG", quality=50)
    with Image.open(BytesIO(data)) as opened:
        table = tuple(opened.quantization[0])

    verified = open_for_renditions(data, max_pixels=LIMIT)

    assert verified.luma_table == table
    assert verified.luma_table[:8] == (16, 11, 10, 16, 24, 40, 51, 61)  # the standard table at quality 50


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(encode(bands(300, 200), "PNG"), id="png"),
        pytest.param(encode(bands(3000, 2000), "JPEG", quality=50), id="reduced-on-decoding"),
        pytest.param(jpeg_with_metadata(bands(300, 200)), id="turned-upright"),
        pytest.param(encode(bands(300, 200).convert("CMYK"), "JPEG"), id="cmyk"),
        pytest.param(tagged("JPEG", ADOBE_RGB, quality=50), id="converted-to-srgb"),
    ],
)
def test_other_pictures_carry_no_table_as_their_pixels_are_not_the_jpegs_blocks(data):
    verified = open_for_renditions(data, max_pixels=LIMIT)
    assert verified.luma_table is None
    assert verified.jpeg is None  # nor the bytes dedupe would read the JPEG's own Y plane from


# Whether the pixels are a lossless file's own (dedupe's rule for two lossless files) -------------


def _turned_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    return exif


@pytest.mark.parametrize(
    ("data", "lossless"),
    [
        pytest.param(encode(bands(300, 200), "PNG"), True, id="png"),
        pytest.param(encode(bands(300, 200).convert("L"), "PNG"), True, id="greyscale-png"),
        pytest.param(encode(bands(300, 200), "PNG", exif=_turned_exif()), True, id="png-turned-upright"),
        pytest.param(encode(bands(3000, 2000), "PNG"), False, id="png-reduced"),
        pytest.param(encode(bands(300, 200), "JPEG", quality=95), False, id="jpeg"),
        pytest.param(encode(bands(300, 200), "WEBP", quality=90), False, id="webp"),
        pytest.param(tagged("PNG", ADOBE_RGB), False, id="png-converted-to-srgb"),
    ],
)
def test_a_png_at_its_own_size_is_marked_lossless(data, lossless):
    assert open_for_renditions(data, max_pixels=LIMIT).lossless is lossless


def test_a_jpeg_at_its_own_size_keeps_its_bytes_for_its_own_luma_plane():
    data = encode(bands(300, 200), "JPEG", quality=70)
    verified = open_for_renditions(data, max_pixels=LIMIT)
    assert verified.jpeg is data

    luma = images.jpeg_luma(data)
    assert luma.mode == "L" and luma.size == (300, 200)
    # The same picture as the Y of the decoded RGB (which clips saturated colours, so not equal).
    through_rgb = np.asarray(verified.image.convert("YCbCr"), np.float32)[..., 0]
    assert np.mean(np.abs(np.asarray(luma, np.float32) - through_rgb)) < 2

    grey = encode(bands(300, 200).convert("L"), "JPEG", quality=70)
    with Image.open(BytesIO(grey)) as opened:
        assert np.array_equal(np.asarray(images.jpeg_luma(grey)), np.asarray(opened))
