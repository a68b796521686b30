"""Verify untrusted image bytes and make JPEG renditions from them, like a small image server.

Every byte here comes from strangers on the internet, so the order of operations is the
defence: only four decoders are reachable, the pixel count is checked from the header before
any pixel is decoded, the first frame is decoded in full (a truncated file is an error, not a
grey band), and what leaves this module is pixels only: no EXIF, GPS, XMP or comments. Those pixels
are sRGB: a picture that carries another RGB colour profile (Display P3 from phones, Adobe RGB from
cameras) is converted with it, since a JPEG without a profile is shown as sRGB.

Size specs follow the image servers everhash replaces: ``WxH`` fits inside the box and never
upscales, ``WxH!`` covers the box and centre-crops to exactly that size. Sides are bounded so
a spec can never ask for a huge allocation.
"""

from __future__ import annotations

import contextlib
import functools
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

import pyvips
from PIL import ExifTags, Image, ImageCms, ImageFile, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
MAX_SPEC_SIDE = 4096
JPEG_QUALITY = 85

# LANCZOS keeps downscaled photos sharp; a reducing gap of 3 lets Pillow box-reduce first on
# big reductions, which its docs describe as indistinguishable from a full LANCZOS pass.
RESAMPLE = Image.Resampling.LANCZOS
REDUCING_GAP = 3.0

# A rendition is derived from a smaller rendition instead of the decoded original when that
# source is still at least this many times bigger than the output: the second pass then
# dominates, so the result looks the same and costs a fraction (e.g. 1024 from 2048).
DERIVE_GAP = 1.5

# ImageOps.exif_transpose's table. That function is not used because its result keeps a cached
# Exif (GPS included) that getexif() still returns after info is cleared.
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_SPEC = re.compile(r"([1-9][0-9]{0,3})x([1-9][0-9]{0,3})(!?)")


class ImageRejected(Exception):
    """Untrusted bytes that will not become a picture; ``reason`` is short enough to store and count."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedImage:
    """Pixels that decoded in full: first frame, upright, RGB on white, no metadata left on them.

    ``width`` and ``height`` are the picture's; ``image`` is the picture at that size
    (`open_verified`) or reduced to the largest rendition's size (`open_for_renditions`).
    """

    image: Image.Image
    format: str
    width: int
    height: int
    # The JPEG's luma quantisation table (64 steps, row by row) when ``image`` is exactly that JPEG's
    # decoded pixels (its own size, no orientation turn, Y'CbCr or greyscale): dedupe tests whether
    # another picture quantises to the same coefficients (pictures/dedupe.py).
    luma_table: tuple[int, ...] | None = None
    # Whether ``image`` is a lossless file's own pixels (a PNG at its own size, turned upright at most):
    # two such pictures of one size are the same picture only with the same pixels (pictures/dedupe.py).
    lossless: bool = False
    # The file's bytes when ``luma_table`` is set (a JPEG's own pixels): dedupe reads the JPEG's own Y
    # plane from them (jpeg_luma), only when it compares that JPEG with a lossless picture of its size.
    jpeg: bytes | None = None
    # When ``image`` was converted to sRGB by the file's colour profile: that profile's description
    # (kept on the picture's row), and (`open_for_renditions` only) the picture as the file's own numbers,
    # read as sRGB, as a copy that dropped the profile unconverted shows it. Dedupe compares that
    # reading too (pictures/dedupe.py, Examined.numbers).
    colour_profile: str = ""
    unconverted: VerifiedImage | None = None


@dataclass(frozen=True)
class Spec:
    """A rendition size: fit inside ``width`` x ``height``, or with ``crop`` fill it exactly."""

    width: int
    height: int
    crop: bool

    def __post_init__(self) -> None:
        # Checked here too, so a Spec built in code is as bounded as one parsed from a URL.
        if not (1 <= self.width <= MAX_SPEC_SIDE and 1 <= self.height <= MAX_SPEC_SIDE):
            raise ValueError(f"Rendition sides must be between 1 and {MAX_SPEC_SIDE} pixels.")

    def __str__(self) -> str:
        return f"{self.width}x{self.height}{'!' if self.crop else ''}"


@contextlib.contextmanager
def _checked_header(data: bytes, *, max_pixels: int, max_side: int) -> Iterator[ImageFile.ImageFile]:
    """The opened file, its format and size checked from the header; no pixel decoded yet."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A process-wide switch that would let half a file through as a picture: fail loudly.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False for untrusted images.")
    if not data:
        raise ImageRejected("empty", "The file is empty.")
    # Pillow only warns about decompression bombs; make that an error, for this block only.
    # (Warning filters are process-wide while the block runs; other threads only get stricter.)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        opened = _open(data)
        try:
            _check_size(opened.size, max_pixels=max_pixels, max_side=max_side)
            yield opened
        finally:
            opened.close()


def _format(opened: ImageFile.ImageFile) -> str:
    # MPO is how Pillow names a JPEG with extra pictures appended (many phones); it is a JPEG.
    return "JPEG" if opened.format == "MPO" else str(opened.format)


def open_verified(data: bytes, *, max_pixels: int, max_side: int = 12000) -> VerifiedImage:
    """Decode the first frame of untrusted bytes, or raise ImageRejected saying why not."""
    with _checked_header(data, max_pixels=max_pixels, max_side=max_side) as opened:
        _load(opened)
        image, colour_profile = _in_srgb(_to_rgb(opened), opened.info.get("icc_profile"))
        # Always end with a new image, so nothing of the file (EXIF, GPS, XMP...) travels on.
        method = _orientation(opened)
        if method is not None:  # not truthiness: FLIP_LEFT_RIGHT is 0
            image = image.transpose(method)
        elif image is opened:
            image = image.copy()
        image_format = _format(opened)
    image.info.clear()
    return VerifiedImage(
        image=image, format=image_format, width=image.width, height=image.height, colour_profile=colour_profile
    )


# PNGs larger than this are decoded by libvips as a stream (Pillow holds the whole picture, twice
# while handing it over, which at 40 megapixels would take fetch_tweets past its memory budget);
# smaller ones decode faster in Pillow.
STREAM_PIXELS = 16_000_000


def open_for_renditions(data: bytes, *, max_pixels: int, max_side: int = 12000) -> VerifiedImage:
    """Like `open_verified`, with the pixels reduced to the size of the largest rendition.

    The checks and their order are open_verified's: Pillow reads the header (format allowlist, pixel
    and side limits, EXIF orientation) before any pixel is decoded, then the first frame is decoded
    in full, a truncated file being an error. What is faster: a JPEG is decoded at 1/2, 1/4 or 1/8
    scale when that still leaves at least the size needed (DCT scaling), the reduction to that size
    runs in libvips (Lanczos 3, several times faster than Pillow's), and a PNG over STREAM_PIXELS is
    decoded and reduced by libvips as a stream, never whole in memory. ``width`` and ``height`` are
    the whole picture's, upright; no metadata travels on.
    """
    with _checked_header(data, max_pixels=max_pixels, max_side=max_side) as opened:
        image_format = _format(opened)
        stored_size = opened.size
        streamed = image_format == "PNG" and stored_size[0] * stored_size[1] > STREAM_PIXELS
        # Pillow's getexif() decodes a whole PNG to look for an eXIf chunk after the pixels; a streamed
        # PNG is oriented by the chunk before them only (where writers put it).
        method = None if streamed and "exif" not in opened.info else _orientation(opened)
        turned = method in _QUARTER_TURNS
        upright = (stored_size[1], stored_size[0]) if turned else stored_size
        (width, height), _ = _plan(upright, RENDITIONS["large"])
        target = (height, width) if turned else (width, height)  # in the stored (not yet upright) frame
        table = None
        if streamed:
            image, profile = _vips_decode(data, image_format, target)
        else:
            if image_format == "JPEG":
                opened.draft("RGB", target)  # no smaller than target; a no-op when it cannot shrink
            _load(opened)
            table = _luma_table(opened) if method is None and opened.size == stored_size == target else None
            image, profile = _to_rgb(opened), opened.info.get("icc_profile")
            image = _vips_resize(image, target) if image.size != target else image.copy()

    def turned_upright(pixels: Image.Image) -> Image.Image:
        if method is not None:
            pixels = pixels.transpose(method)  # a turn or a mirror moves pixels without changing them
        pixels.info.clear()
        return pixels

    as_stored = VerifiedImage(
        image=turned_upright(image),
        format=image_format,
        width=upright[0],
        height=upright[1],
        luma_table=table,
        lossless=image_format == "PNG" and target == stored_size,
        jpeg=data if table is not None else None,
    )
    # Converted once reduced: per pixel, so the same as before reducing, on a fraction of the pixels.
    colours, colour_profile = _in_srgb(image, profile)
    if not colour_profile:
        return as_stored
    # No longer the JPEG's own pixels nor a lossless file's: dedupe's exact rules apply to the numbers only.
    return VerifiedImage(
        image=turned_upright(colours),
        format=image_format,
        width=upright[0],
        height=upright[1],
        colour_profile=colour_profile,
        unconverted=as_stored,
    )


def jpeg_luma(data: bytes) -> Image.Image | None:
    """The Y plane of a JPEG (bytes whose VerifiedImage has a luma_table) as its decoder outputs it,
    before any conversion to RGB, so saturated colours are not clipped; None when the decoder cannot give
    it (a JPEG that is not Y'CbCr or greyscale)."""
    with Image.open(BytesIO(data), formats=("JPEG", "MPO")) as opened:
        if opened.mode == "RGB":
            opened.draft("YCbCr", opened.size)  # the decoder's own planes, at full size
        if opened.mode not in ("YCbCr", "L"):
            return None
        opened.load()
        return opened.getchannel(0) if opened.mode == "YCbCr" else opened.copy()


def _luma_table(image: Image.Image) -> tuple[int, ...] | None:
    """A decoded JPEG's luma quantisation table, when its pixels are Y'CbCr (or grey) as JPEG stores them."""
    tables = getattr(image, "quantization", None)
    if image.format != "JPEG" or image.mode not in ("L", "RGB") or not tables or len(tables.get(0, ())) != 64:
        return None
    return tuple(int(step) for step in tables[0])


def _to_vips(image: Image.Image) -> pyvips.Image:
    """An RGB Pillow image's pixels as a libvips image."""
    return pyvips.Image.new_from_memory(image.tobytes(), image.width, image.height, 3, "uchar")


def _from_vips(image: pyvips.Image) -> Image.Image:
    """An RGB libvips image's pixels as a Pillow image."""
    return Image.frombytes("RGB", (image.width, image.height), image.write_to_memory())


def _vips_resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A new RGB image of exactly ``size`` (Lanczos 3 in libvips; Pillow if libvips rounds otherwise)."""
    source = _to_vips(image)
    resized = source.resize(size[0] / image.width, vscale=size[1] / image.height, kernel="lanczos3")
    if (resized.width, resized.height) != size:
        return image.resize(size, RESAMPLE, reducing_gap=REDUCING_GAP)
    return _from_vips(resized)


_QUARTER_TURNS = (
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)
_VIPS_LOADERS = {"JPEG": "jpegload_buffer", "PNG": "pngload_buffer", "GIF": "gifload_buffer", "WEBP": "webpload_buffer"}


def _vips_decode(data: bytes, image_format: str, target: tuple[int, int]) -> tuple[Image.Image, bytes | None]:
    """Decode with libvips' loader for ``image_format`` only, as a stream, reduced to ``target``; the
    pixels as they are stored, and the colour profile the file carries (None when it has none)."""
    options: dict[str, object] = {"fail_on": "truncated", "access": "sequential"}
    try:
        image = getattr(pyvips.Image, _VIPS_LOADERS[image_format])(data, **options)
        profile = image.get("icc-profile-data") if image.get_typeof("icc-profile-data") else None
        image = _vips_rgb(image)
        if (image.width, image.height) != target:
            image = image.resize(
                target[0] / image.width, vscale=target[1] / image.height, kernel="lanczos3", gap=REDUCING_GAP
            )
        pixels = image.write_to_memory()
    except pyvips.Error as exc:
        raise _vips_rejection(exc, data, image_format) from exc
    if (image.width, image.height) != target:  # libvips rounded a side the other way: fix it in Pillow
        return Image.frombytes("RGB", (image.width, image.height), pixels).resize(target, RESAMPLE), profile
    return Image.frombytes("RGB", target, pixels), profile


def _vips_rgb(image: pyvips.Image) -> pyvips.Image:
    """8-bit sRGB, transparency flattened onto white (like _to_rgb)."""
    if image.format != "uchar" or image.interpretation not in ("srgb", "b-w"):
        image = image.colourspace("b-w" if image.bands <= 2 else "srgb")
        if image.format != "uchar":
            image = image.cast("uchar")
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    if image.bands == 1:
        image = image.bandjoin([image, image])
    return image


# How each format's file ends; a decoding error on a file that does not end so is a cut file.
_TRAILERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82", "GIF": b"\x3b"}


def _vips_rejection(exc: pyvips.Error, data: bytes, image_format: str) -> ImageRejected:
    text = f"{exc.message} {exc.detail}".lower()
    trailer = _TRAILERS.get(image_format)
    if trailer is not None and not data.rstrip(b"\0").endswith(trailer):
        return ImageRejected("truncated", "The image file is incomplete.")
    if any(words in text for words in ("truncat", "premature", "end of file", "unexpected end", "not enough data")):
        return ImageRejected("truncated", "The image file is incomplete.")
    return ImageRejected("decode", "The image data is damaged.")


def _open(data: bytes) -> ImageFile.ImageFile:
    """Identify the format and read the header only; no pixel is decoded yet."""
    try:
        image = Image.open(BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageRejected("format", "This is not a JPEG, PNG, GIF or WebP image.") from exc
    except Exception as exc:
        raise _rejection(exc) from exc
    if image.format not in (*ALLOWED_FORMATS, "MPO"):
        image.close()
        raise ImageRejected("format", "This is not a JPEG, PNG, GIF or WebP image.")
    return image


def _check_size(size: tuple[int, int], *, max_pixels: int, max_side: int) -> None:
    width, height = size
    if width * height > max_pixels or max(width, height) > max_side:
        raise ImageRejected("too_many_pixels", f"The image is too large to process ({width}x{height} pixels).")


def _load(image: ImageFile.ImageFile) -> None:
    """Decode the current frame only: never seek, so a 500-frame GIF costs one frame."""
    try:
        image.load()
    except Exception as exc:
        raise _rejection(exc) from exc


def _rejection(exc: Exception) -> ImageRejected:
    """Name what went wrong inside Pillow; any exception from a decoder on untrusted bytes is a rejection."""
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        # Pillow's own check of the size declared in the header.
        return ImageRejected("too_many_pixels", "The image is too large to process.")
    if isinstance(exc, OSError) and "truncated" in str(exc).lower():
        # "image file is truncated (...)" or "Truncated File Read"
        return ImageRejected("truncated", "The image file is incomplete.")
    if isinstance(exc, ValueError) and "too large" in str(exc):
        # A compressed PNG text or ICC chunk that would inflate past Pillow's limit.
        return ImageRejected("bomb", "The image holds compressed data that expands too far.")
    return ImageRejected("decode", "The image data is damaged.")


def _orientation(image: Image.Image) -> Image.Transpose | None:
    """How to turn the picture upright per EXIF; broken EXIF means upright, the pixels are what count."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return None
    return _ORIENTATION.get(orientation) if isinstance(orientation, int) else None


# Display P3 and Adobe RGB profiles are under 1 KB, a camera's table-based one a few hundred; a JPEG may
# split up to 16 MB of profile over its APP2 segments, which littleCMS would parse and the cache keep.
MAX_PROFILE_BYTES = 1_000_000


@functools.lru_cache(maxsize=8)  # a few profiles are most of an album's (the phones' Display P3...)
def _profile_to_convert(profile: bytes) -> str | None:
    """The description of an embedded RGB profile that pictures are converted from (littleCMS reads it
    through Pillow); None when no conversion is due: a profile for sRGB already, one for another
    colour space (grey, CMYK: converted as before, without it), or one littleCMS cannot read (the
    pixels are then taken as sRGB, as a browser takes them; so is a profile over MAX_PROFILE_BYTES)."""
    try:
        embedded = ImageCms.ImageCmsProfile(BytesIO(profile)).profile
        description = (embedded.profile_description or "").strip()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    if embedded.xcolor_space.strip() != "RGB" or description.startswith("sRGB"):
        return None
    return description[:100] or "unnamed RGB profile"


def _in_srgb(image: Image.Image, profile: bytes | None) -> tuple[Image.Image, str]:
    """``image`` (RGB) in sRGB given the colour profile its file carried, and the description of the
    profile it was converted from ("" when it was not).

    The pixels are converted by libvips (littleCMS underneath, relative colorimetric as browsers show
    photos): 23 ms of CPU at 2048 x 1536 where Pillow's ImageCms took 54, the same values within one level.
    """
    description = _profile_to_convert(profile) if profile and len(profile) <= MAX_PROFILE_BYTES else None
    if description is None:
        return image, ""
    tagged = _to_vips(image).copy()
    tagged.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    try:
        return _from_vips(tagged.icc_transform("srgb", embedded=True, intent="relative")), description
    except pyvips.Error:  # a profile libvips refuses: taken as sRGB, like an unreadable one
        return image, ""


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparency flattened onto white, the way a page would show it."""
    if image.mode.startswith("I"):
        # 16-bit greyscale PNG: Pillow's conversion clips at 255, so scale to 8 bits first.
        image = image.convert("I").point(lambda value: value / 257).convert("L")
        image.info.pop("transparency", None)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


def parse_spec(text: str) -> Spec:
    """``"400x300"`` or ``"400x300!"``, nothing else, so each size has exactly one spelling (one cache key)."""
    match = _SPEC.fullmatch(text)
    if match is None:
        raise ValueError(f"Not a size spec: {text!r}; expected WxH or WxH! such as 400x300!.")
    return Spec(width=int(match[1]), height=int(match[2]), crop=bool(match[3]))


def _plan(size: tuple[int, int], spec: Spec) -> tuple[tuple[int, int], tuple[float, float, float, float]]:
    """The output size and the region of an image of ``size`` that fills it."""
    width, height = size
    if spec.crop:
        scale = max(spec.width / width, spec.height / height)
        box_width, box_height = spec.width / scale, spec.height / scale
        left, top = (width - box_width) / 2, (height - box_height) / 2
        return (spec.width, spec.height), (left, top, left + box_width, top + box_height)
    scale = min(spec.width / width, spec.height / height, 1.0)
    out = (min(spec.width, max(1, round(width * scale))), min(spec.height, max(1, round(height * scale))))
    return out, (0.0, 0.0, float(width), float(height))


def _render_from(source: Image.Image, original: tuple[int, int], spec: Spec) -> Image.Image:
    """Render ``spec`` of an image of size ``original`` from ``source``, that whole image at any scale.

    Returns ``source`` itself when nothing needs doing; callers that hand the result out copy it.
    """
    out, box = _plan(original, spec)
    scale_x, scale_y = source.width / original[0], source.height / original[1]
    # Clamped: float rounding can put a centred crop a hair outside the image, which Pillow refuses.
    box = (
        max(0.0, box[0] * scale_x),
        max(0.0, box[1] * scale_y),
        min(float(source.width), box[2] * scale_x),
        min(float(source.height), box[3] * scale_y),
    )
    if out == source.size and box == (0.0, 0.0, float(source.width), float(source.height)):
        return source
    return source.resize(out, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)


def render(image: Image.Image, spec: Spec) -> Image.Image:
    """A new image sized per ``spec`` from an RGB image such as ``VerifiedImage.image``."""
    result = _render_from(image, image.size, spec)
    return result.copy() if result is image else result


def encode_jpeg(image: Image.Image, *, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes carrying pixels only; the same image always gives the same bytes (cacheable, hashable)."""
    if image.mode not in ("RGB", "L"):
        raise ValueError(f"encode_jpeg needs an RGB or L image, not {image.mode}; use open_verified() first.")
    if image.info or getattr(image, "encoderinfo", None):
        # Pillow's JPEG writer picks up a comment from info and anything preset in encoderinfo.
        image = image.copy()
        image.info.clear()
    out = BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


RENDITIONS: dict[str, Spec] = {
    "thumb": parse_spec("200x200!"),
    "square": parse_spec("400x400!"),
    "medium": parse_spec("1024x1024"),
    "large": parse_spec("2048x2048"),
}


def make_renditions(verified: VerifiedImage) -> dict[str, tuple[bytes, int, int]]:
    """Every rendition in RENDITIONS as ``name -> (jpeg, width, height)``, made by libvips.

    Biggest first, each from the smallest whole-picture image already made that is still
    DERIVE_GAP times bigger than needed: resizing 12 megapixels once, not four times, is most
    of the saving over rendering each size from the original. Sizes are `_plan`'s, exactly.
    """
    original = (verified.width, verified.height)  # the image itself may be a reduced copy
    image = verified.image if verified.image.mode == "RGB" else verified.image.convert("RGB")
    base = _to_vips(image)
    sources: list[pyvips.Image] = []  # whole-picture renditions made so far, biggest first
    made: dict[str, tuple[bytes, int, int]] = {}
    for name, spec in sorted(RENDITIONS.items(), key=lambda item: -_output_pixels(original, item[1])):
        needed = _needed_scale(original, spec)
        bigger = (s for s in reversed(sources) if s.width / original[0] >= needed * DERIVE_GAP)
        source = next(bigger, base)
        rendition = _render_vips(source, original, spec)
        if not spec.crop and rendition is not source:
            sources.append(rendition)
        made[name] = (_encode_vips(rendition), rendition.width, rendition.height)
    return {name: made[name] for name in RENDITIONS}


def _render_vips(source: pyvips.Image, original: tuple[int, int], spec: Spec) -> pyvips.Image:
    """`_render_from` in libvips (Lanczos 3), kept in memory as the source of smaller renditions.

    A crop spec scales the whole source to cover the box, then takes the centre (the box is
    centred); when libvips would round a side the other way, Pillow renders that one exactly.
    """
    out, box = _plan(original, spec)
    scale = out[0] / ((box[2] - box[0]) * source.width / original[0])
    vscale = out[1] / ((box[3] - box[1]) * source.height / original[1])
    if out == (source.width, source.height) and not spec.crop:
        return source
    resized = source.resize(scale, vscale=vscale, kernel="lanczos3")
    left, top = (resized.width - out[0]) // 2, (resized.height - out[1]) // 2
    if spec.crop and left >= 0 and top >= 0:
        resized = resized.crop(left, top, *out)
    if (resized.width, resized.height) != out:
        return _to_vips(_render_from(_from_vips(source), original, spec))
    return resized.copy_memory()


def _encode_vips(image: pyvips.Image) -> bytes:
    """JPEG bytes carrying pixels only (keep="none"); the same pixels always give the same bytes."""
    return image.jpegsave_buffer(Q=JPEG_QUALITY, optimize_coding=True, keep="none")


def _output_pixels(size: tuple[int, int], spec: Spec) -> int:
    (width, height), _ = _plan(size, spec)
    return width * height


def _needed_scale(size: tuple[int, int], spec: Spec) -> float:
    """How many output pixels per original pixel ``spec`` needs, along the more demanding side."""
    (width, height), (left, top, right, bottom) = _plan(size, spec)
    return max(width / (right - left), height / (bottom - top))
