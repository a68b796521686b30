"""Builders for users, albums and pictures, with one set of defaults (like healthchecks' hc/test.py).

- `make_user`, `make_album`, `make_picture`: one row each; keyword arguments override the defaults.
- `add_pictures`: many picture rows in one INSERT, a minute apart, the last one newest.
- `make_stored_picture`: a picture stored the way a fetch stores it (real bytes, renditions, files).
- `make_coloured_picture(s)`: pictures of one solid colour with real rendition files (collages).
- `photo_bytes`: real image bytes made from one of the bundled sample photos.

Rows that need no files point at keys where nothing is stored. Every picture builder tells the
album its pictures changed, as a fetch does (albums.services.pictures_changed: the version pages and
API caches follow, the visible count); the collage is left alone so tests of staleness start from a
clean state.
"""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from albums.models import Album
from albums.services import pictures_changed
from pictures.models import Picture, Source
from tweets.models import AlbumSource
from users.models import User

_serial = itertools.count(1)

SAMPLE_PHOTOS = Path(__file__).resolve().parents[2] / "tweets" / "sample_data" / "photos"
COLOUR_PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "retina.jpg"]
FIRST_POST_ID = 1_800_000_000_000_000_000  # X-sized ids (above 2**60)
POSTED_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# Rendition entries whose keys hold no file: for API and page tests that only build URLs.
RENDITIONS = {
    "thumb": {"key": "renditions/ab/abc/thumb.jpg", "width": 200, "height": 200},
    "square": {"key": "renditions/ab/abc/square.jpg", "width": 400, "height": 400},
    "medium": {"key": "renditions/ab/abc/medium.jpg", "width": 1024, "height": 768},
    "large": {"key": "renditions/ab/abc/large.jpg", "width": 2048, "height": 1536},
}


def make_user(email: str | None = None, password: str | None = "password", **kwargs) -> User:
    return User.objects.create_user(email or f"user{next(_serial)}@example.com", password, **kwargs)


def make_album(*, owner: User, hashtag: str = "sunset", **kwargs) -> Album:
    return Album.objects.create(owner=owner, hashtag=hashtag, **kwargs)


def album_source(album: Album, key: str = "x", **fields) -> AlbumSource:
    """The album's state for one source (its cursors, back-off, rate limit), with `fields` saved."""
    row, _ = AlbumSource.objects.get_or_create(album=album, key=key)
    if fields:
        AlbumSource.objects.filter(pk=row.pk).update(**fields)
        row.refresh_from_db()
    return row


def picture_fields(n: int) -> dict:
    """The default fields of the n-th built picture: unique post, media key and content."""
    post_id = FIRST_POST_ID + n
    return {
        "source": Source.SAMPLE,
        "post_id": str(post_id),
        "media_key": f"3_{n}",
        "permalink": f"https://x.com/someone/status/{post_id}",
        "author_handle": "someone",
        "author_name": "Some One",
        "like_count": n,
        "posted_at": POSTED_AT,
        "added_at": timezone.now(),
        "width": 800,
        "height": 600,
        "content_hash": f"{n:064x}",
        "histogram": b"",
        "structure_hash": "",
        "original_key": f"originals/{n:064x}.jpg",
    }


def _bump_version(album: Album) -> None:
    pictures_changed(album_ids=[album.pk], collage_stale=False)


def make_picture(*, album: Album, **kwargs) -> Picture:
    picture = Picture.objects.create(album=album, **{**picture_fields(next(_serial)), **kwargs})
    _bump_version(album)
    return picture


def add_pictures(album: Album, count: int, **kwargs) -> list[Picture]:
    """`count` pictures in one INSERT, posted and added a minute apart from POSTED_AT (the last one
    newest), with rendition entries (no files)."""
    pictures = []
    for index in range(count):
        when = POSTED_AT + timedelta(minutes=index)
        fields = {**picture_fields(next(_serial)), "posted_at": when, "added_at": when, "renditions": RENDITIONS}
        pictures.append(Picture(album=album, **{**fields, **kwargs}))
    created = Picture.objects.bulk_create(pictures)
    _bump_version(album)
    return created


def photo_bytes(name: str, *, fmt: str = "JPEG", scale: float = 1.0, quality: int = 90, mirror: bool = False) -> bytes:
    """Real image bytes made from one of the bundled sample photos."""
    from PIL import Image, ImageOps

    with Image.open(SAMPLE_PHOTOS / name) as source:
        image = source.convert("RGB")
    image.info.clear()  # no colour profile carried into a PNG (Pillow would write it): every variant alike
    if scale != 1.0:
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
    if mirror:
        image = ImageOps.mirror(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def make_stored_picture(
    album: Album, name: str, *, handle: str = "ana", post_id: str = "1", media_key: str = "", **kw
) -> Picture:
    """A picture stored the way a fetch stores it: real bytes (`photo_bytes(name, **kw)`), renditions
    and files. `text`, `likes` and `source` describe the post."""
    from pictures.services import ingest_photo, load_signature_index
    from tweets.sources import Photo, Post

    photo = Photo(media_key=media_key or f"3_{name}", url="sample://x", width=0, height=0)
    post = Post(
        id=post_id,
        permalink=f"https://x.com/{handle}/status/{post_id}",
        author_handle=handle,
        author_name=handle.title(),
        text=kw.pop("text", "#sunset"),
        like_count=kw.pop("likes", 1),
        posted_at=datetime(2026, 11, 20, tzinfo=UTC),
        sensitive=False,
        photos=(photo,),
    )
    outcome = ingest_photo(
        album=album,
        source=kw.pop("source", Source.X),
        post=post,
        photo=photo,
        data=photo_bytes(name, **kw),
        index=load_signature_index(album=album),
    )
    assert outcome.kind == "added", outcome
    return outcome.picture


def stored_keys(picture: Picture) -> list[str]:
    """The storage keys of a picture's original and renditions."""
    return [picture.original_key, *(r["key"] for r in picture.renditions.values())]


# Colours a collage test can tell apart in its tiles: PALETTE[i] is expected in tile i.
PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (128, 128, 128),
]


def solid_jpeg(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    scale = min(side / size[0], side / size[1], 1.0)
    return round(size[0] * scale), round(size[1] * scale)


def make_coloured_picture(
    album: Album,
    colour: tuple[int, int, int],
    *,
    size: tuple[int, int] = (1600, 1200),
    large_colour: tuple[int, int, int] | None = None,
    **kwargs,
) -> Picture:
    """A picture of one solid colour, with real medium and large JPEG renditions in storage."""
    picture = make_picture(album=album, width=size[0], height=size[1], **kwargs)
    renditions = {}
    for name, side, fill in (("medium", 1024, colour), ("large", 2048, large_colour or colour)):
        width, height = _fit(size, side)
        key = f"renditions/{picture.content_hash[:2]}/{picture.content_hash}/{name}.jpg"
        default_storage.save(key, ContentFile(solid_jpeg(fill, (width, height))))
        renditions[name] = {"key": key, "width": width, "height": height}
    picture.renditions = renditions
    picture.save(update_fields=["renditions"])
    return picture


def make_coloured_pictures(album: Album, count: int, **kwargs) -> list[Picture]:
    """`count` coloured pictures, the first the most liked: PALETTE[i] is expected in tile i."""
    return [make_coloured_picture(album, PALETTE[i], like_count=1000 - i, **kwargs) for i in range(count)]
