"""The bundled sample source: recorded X-v2-shaped pages and photos made on demand.

Used when no X token is configured, so everhash works offline and `make run`
shows a full album. Two demo hashtags are recorded in `sample_data/pages/`
(`everhashdemo`, `catsofeverhash`); `sample_data/README.md` describes them and
`sample_data/make_pages.py` regenerates them.

Photo URLs are `sample://<variant>`. A variant is one of the bundled photos in
`sample_data/photos/` plus a recipe (operations, scale, format) stored in
`sample_data/recipes.json`; `download()` renders it with Pillow, byte for byte
the same every time. No HTTP request is ever made, so `requests_made` stays 0.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from albums.hashtags import normalize_hashtag
from tweets.sources import MediaError, Page, Photo, SourceError, source_label
from tweets.x_api import parse_search_response

DATA_DIR = Path(__file__).resolve().parent / "sample_data"
PAGE_SIZE = 100  # what X's max_results allows, and what the X source asks for
URL_PREFIX = "sample://"
# The demo albums `make run` creates (manage.py add_sample_albums): hashtag -> title.
SAMPLE_HASHTAGS = {"everhashdemo": "The everhash demo album", "catsofeverhash": "Cats of everhash"}
_TOKEN = re.compile(r"^sample-page-(?P<page>[2-9]|[1-9][0-9]+)(?:-since-(?P<since>[0-9]{1,19}))?$")


def _crop(im: Image.Image, *, x: float, y: float) -> Image.Image:
    """An 80% crop; `x`, `y` place it (0 = left/top edge, 0.5 = centre, 1 = right/bottom edge)."""
    w, h = im.size
    cw, ch = round(w * 0.8), round(h * 0.8)
    left, top = round((w - cw) * x), round((h - ch) * y)
    return im.crop((left, top, left + cw, top + ch))


def _sepia(im: Image.Image) -> Image.Image:
    return ImageOps.colorize(ImageOps.grayscale(im), black="#2b1a0a", white="#fff3dc", mid="#a8825a")


def _blur(im: Image.Image) -> Image.Image:
    # 1% of the shorter side, at least 3 px: visibly soft at any photo size.
    return im.filter(ImageFilter.GaussianBlur(radius=max(3, min(im.size) // 100)))


# Each operation turns one picture into a different one under the product's
# definition of a duplicate (a filter, a crop, a mirror image, a rotation).
OPS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "greyscale": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "sepia": _sepia,
    "brighten": lambda im: ImageEnhance.Brightness(im).enhance(1.45),
    "darken": lambda im: ImageEnhance.Brightness(im).enhance(0.55),
    "contrast-up": lambda im: ImageEnhance.Contrast(im).enhance(1.8),
    "contrast-down": lambda im: ImageEnhance.Contrast(im).enhance(0.45),
    "blur": _blur,
    "sharpen": lambda im: im.filter(ImageFilter.UnsharpMask(radius=4, percent=300, threshold=0)),
    "invert": ImageOps.invert,
    "mirror": ImageOps.mirror,
    "rotate90": lambda im: im.transpose(Image.Transpose.ROTATE_270),  # 90 degrees clockwise
    "rotate180": lambda im: im.transpose(Image.Transpose.ROTATE_180),
    "rotate270": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "crop-centre": lambda im: _crop(im, x=0.5, y=0.5),
    "crop-top-left": lambda im: _crop(im, x=0, y=0),
    "crop-top-right": lambda im: _crop(im, x=1, y=0),
    "crop-bottom-left": lambda im: _crop(im, x=0, y=1),
    "crop-bottom-right": lambda im: _crop(im, x=1, y=1),
}
FORMATS = ("JPEG", "PNG")


@functools.lru_cache(maxsize=16)
def _photo(path: Path) -> Image.Image:
    """A bundled photo, decoded once, as RGB with no metadata. Callers must not modify it."""
    with Image.open(path) as im:
        im.load()
        rgb = im.convert("RGB")
    rgb.info.clear()  # no ICC profile, EXIF or comments carried into the variants
    return rgb


def render(recipe: dict, *, photos_dir: Path = DATA_DIR / "photos") -> bytes:
    """The encoded bytes of a variant: deterministic (same recipe, same bytes).

    A recipe is `{"photo": "chelsea.png", "ops": ["mirror", "sepia"], "scale":
    1.0, "format": "JPEG", "quality": 88}`: the operations in order, then the
    resize, then the encoding (no metadata, no timestamps). Raises MediaError
    for a recipe it cannot follow.
    """
    try:
        name = recipe["photo"]
        ops = [OPS[op] for op in recipe.get("ops", [])]
        scale = float(recipe.get("scale", 1.0))
        fmt = recipe.get("format", "JPEG")
    except (KeyError, TypeError, ValueError) as exc:
        raise MediaError(f"The sample recipe is not usable: {exc}.") from None
    path = photos_dir / name
    if fmt not in FORMATS or not 0 < scale <= 4 or path.parent != photos_dir or not path.is_file():
        raise MediaError(f"The sample recipe is not usable: {recipe!r}.")

    im = _photo(path)
    for op in ops:
        im = op(im)
    if scale != 1.0:
        w, h = im.size
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    if im.mode != "RGB":
        im = im.convert("RGB")
    out = io.BytesIO()
    if fmt == "JPEG":
        # No exif, icc_profile or comment: a fresh image carries none, and none is passed.
        im.save(out, "JPEG", quality=int(recipe.get("quality", 85)), optimize=False, progressive=False)
    else:
        im.save(out, "PNG", optimize=False, compress_level=6)
    return out.getvalue()


@dataclass(frozen=True)
class _Recording:
    """Every recorded post of one hashtag, newest first, with the media and users they reference."""

    posts: list[dict]
    media: dict[str, dict]
    users: dict[str, dict]


@functools.lru_cache(maxsize=8)
def _recording(pages_dir: Path, hashtag: str) -> _Recording | None:
    if not re.fullmatch(r"\w{1,100}", hashtag):  # normalize_hashtag's letters, digits and _: safe in a glob
        return None
    files = sorted(pages_dir.glob(f"{hashtag}-*.json"))
    if not files:
        return None
    posts: list[dict] = []
    media: dict[str, dict] = {}
    users: dict[str, dict] = {}
    for file in files:
        payload = json.loads(file.read_text(encoding="utf-8"))
        posts.extend(payload.get("data") or [])
        includes = payload.get("includes") or {}
        media.update({m["media_key"]: m for m in includes.get("media") or []})
        users.update({u["id"]: u for u in includes.get("users") or []})
    posts.sort(key=lambda post: int(post["id"]), reverse=True)
    return _Recording(posts=posts, media=media, users=users)


@functools.lru_cache(maxsize=4)
def _recipes(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text(encoding="utf-8"))


class SampleSource:
    """A `tweets.sources.Source` serving the recorded demo pages, like X's recent search would.

    Pages hold at most `page_size` posts, newest first. `since_id` is exclusive;
    `next_token` (opaque, e.g. "sample-page-2") continues to older posts and
    carries the `since_id` it was issued under. An unknown hashtag gives an
    empty page. `requests_made` stays 0: nothing goes over the network.
    """

    name = "sample"
    key = "sample"
    label = source_label(key)
    requests_made = 0

    def __init__(self, *, data_dir: Path = DATA_DIR, page_size: int = PAGE_SIZE) -> None:
        self.data_dir = data_dir
        self.page_size = page_size

    def search(self, *, hashtag: str, since_id: str | None = None, next_token: str | None = None) -> Page:
        page_number, token_since = self._parse_token(next_token)
        since = since_id or token_since
        if since is not None and not str(since).isdigit():
            raise SourceError(f"The sample source was given an invalid since_id: {since!r}.")
        try:
            tag = normalize_hashtag(hashtag)
        except ValidationError:
            tag = ""
        recording = _recording(self.data_dir / "pages", tag)
        if recording is None:
            return parse_search_response({"meta": {"result_count": 0}})

        posts = [p for p in recording.posts if since is None or int(p["id"]) > int(since)]
        start = (page_number - 1) * self.page_size
        chunk = posts[start : start + self.page_size]
        meta: dict = {"result_count": len(chunk)}
        if chunk:
            meta.update(newest_id=chunk[0]["id"], oldest_id=chunk[-1]["id"])
        if len(posts) > start + self.page_size:
            meta["next_token"] = f"sample-page-{page_number + 1}" + (f"-since-{since}" if since else "")
        keys = {key for post in chunk for key in (post.get("attachments") or {}).get("media_keys", [])}
        authors = {post.get("author_id") for post in chunk}
        payload = {
            "data": chunk,
            "includes": {
                "media": [m for key, m in recording.media.items() if key in keys],
                "users": [u for uid, u in recording.users.items() if uid in authors],
            },
            "meta": meta,
        }
        return parse_search_response(payload)

    def serves(self, hashtag: str) -> bool:
        """Only the demo albums have sample posts: another album is not promised any."""
        try:
            return normalize_hashtag(hashtag) in SAMPLE_HASHTAGS
        except ValidationError:
            return False

    def download(self, photo: Photo) -> bytes:
        """The variant's bytes, rendered from its recipe. Raises MediaError for an unknown variant."""
        if not photo.url.startswith(URL_PREFIX):
            raise MediaError(f"Not a sample photo: {photo.url}.")
        variant = photo.url[len(URL_PREFIX) :].split("?", 1)[0]
        recipe = _recipes(self.data_dir / "recipes.json").get(variant)
        if recipe is None:
            raise MediaError(f"The sample has no photo called {variant!r}.")
        return render(recipe, photos_dir=self.data_dir / "photos")

    @staticmethod
    def _parse_token(token: str | None) -> tuple[int, str | None]:
        if not token:
            return 1, None
        match = _TOKEN.match(token)
        if not match:
            raise SourceError(f"The sample source does not know the page token {token!r}.")
        return int(match["page"]), match["since"]
