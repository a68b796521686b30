"""Storing one downloaded photo in one album: verify, dedupe, renditions, files, row.

The order of writes makes a crash or an overlapping run harmless: files go to
content-addressed keys first (a retry writes the same key with the same bytes),
then the row is inserted; the unique constraints on (album, source, media_key)
and (album, content_hash) turn a second insert into a skipped duplicate.

Storage goes through pictures/storage.py: when the store itself fails, `StorageUnavailable`
(an OSError) propagates, no row is inserted, and the fetch fails the album so it keeps its
cursor and retries later; a picture is never rejected because the storage was down.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from albums.models import Album
from albums.services import pictures_changed
from collages.services import delete_collage
from everhash.lib.csvsafe import SafeWriter
from everhash.lib.images import ImageRejected, VerifiedImage, make_renditions, open_for_renditions, open_verified
from everhash.lib.zipstream import Entry, blocks_of, stream_zip
from pictures.dedupe import (
    VERIFY_RENDITION,
    Examined,
    SignatureIndex,
    View,
    decode_view,
    find_duplicate,
    fits_view,
    view_of,
)
from pictures.models import Picture
from pictures.storage import (  # noqa: F401  (StorageUnavailable: re-exported)
    StorageUnavailable,
    delete_files,
    read_file,
    store_file,
)
from tweets.models import AlbumSource
from tweets.sources import Photo, Post

logger = logging.getLogger("everhash.ingest")

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}


@dataclass(frozen=True)
class Outcome:
    """What happened to one photo: "added", "duplicate" or "rejected" (with a reason code and message)."""

    kind: str
    picture: Picture | None = None
    reason: str = ""
    message: str = ""
    duplicate_of: int | None = None  # the stored picture a duplicate matches


def original_key(content_hash: str, image_format: str) -> str:
    return f"originals/{content_hash[:2]}/{content_hash}.{EXTENSIONS[image_format]}"


def rendition_key(content_hash: str, name: str) -> str:
    return f"renditions/{content_hash[:2]}/{content_hash}/{name}.jpg"


def load_signature_index(*, album: Album) -> SignatureIndex:
    """The album's stored signatures (every status: a hidden picture must not come back as new)."""
    rows = Picture.objects.filter(album=album).values_list("id", "histogram", "structure_hash").iterator()
    return SignatureIndex.from_rows((pk, bytes(histogram), structure) for pk, histogram, structure in rows)


class StoredPicture:
    """A stored picture as dedupe verifies against it (pictures.dedupe.Stored): its row read once when
    made, its original read from the storage and decoded at most once, and only when a verification
    needs it (a picture that fits the verification rendition, a profiled picture's numbers, a PNG
    confirmed against a PNG of its size)."""

    def __init__(self, picture_id: int) -> None:
        self.row = (
            Picture.objects.filter(pk=picture_id)
            .values("renditions", "original_key", "width", "height", "colour_profile", "content_hash")
            .first()
        )

    @cached_property
    def _original(self) -> VerifiedImage | None:
        """The original decoded as ingest decodes it; None when it cannot be read, or no longer decodes
        (stored before a stricter check: its rendition still says what it looks like)."""
        data = read_file(self.row["original_key"]) if self.row else None
        if not data:
            return None
        try:
            return open_for_renditions(data, max_pixels=settings.EVERHASH_MAX_IMAGE_PIXELS)
        except ImageRejected:
            return None

    def stored_view(self) -> View | None:
        """A picture that fits the verification rendition by its original's own pixels (and JPEG table),
        a larger one by its verification rendition (dedupe.Examined.stored_view); None when neither can
        be read."""
        if self.row is None:
            return None
        if fits_view(self.row["width"], self.row["height"]) and self._original is not None:
            return view_of(self._original)
        rendition = (self.row["renditions"] or {}).get(VERIFY_RENDITION)
        data = read_file(rendition["key"]) if rendition else None
        return decode_view(data) if data else None

    @cached_property
    def numbers(self) -> Examined | None:
        """The picture read by its original's own numbers (dedupe.Examined.numbers), when its colour
        profile changed its colours (``Picture.colour_profile``: nothing is read for any other picture)."""
        if self.row is None or not self.row["colour_profile"] or self._original is None:
            return None
        unconverted = self._original.unconverted
        return Examined(unconverted, content_hash=self.row["content_hash"]) if unconverted is not None else None

    def stored_png(self, size: tuple[int, int]) -> View | None:
        """The picture seen by its original's own pixels when that is a PNG of ``size`` (dedupe.View.png_size;
        a profiled one never is); None otherwise, and nothing is read for any other picture."""
        row = self.row
        if (
            row is None
            or (row["width"], row["height"]) != size
            or not row["original_key"].endswith("." + EXTENSIONS["PNG"])
            or row["colour_profile"]
            or self._original is None
        ):
            return None
        view = view_of(self._original)
        return view if view.png_size == size else None


def ingest_photo(
    *,
    album: Album,
    source: str,
    post: Post,
    photo: Photo,
    data: bytes,
    index: SignatureIndex,
    status: str = Picture.Status.VISIBLE,
) -> Outcome:
    """Store one photo's bytes in the album unless it is a duplicate or not a usable image.

    Raises StorageUnavailable (files first, so no row is inserted) when the storage fails.
    """
    content_hash = hashlib.sha256(data).hexdigest()
    same = Picture.objects.filter(album=album, content_hash=content_hash).values_list("pk", flat=True).first()
    if same is not None:
        return Outcome(
            "duplicate", reason="same_bytes", message="the same bytes are already in the album", duplicate_of=same
        )
    try:
        verified = open_for_renditions(data, max_pixels=settings.EVERHASH_MAX_IMAGE_PIXELS)
    except ImageRejected as exc:
        return Outcome("rejected", reason=exc.reason, message=str(exc))
    examined = Examined(verified, content_hash=content_hash)
    signature = examined.signature
    duplicate_of, _ = find_duplicate(index=index, candidate=examined, stored=StoredPicture)
    if duplicate_of is not None:
        return Outcome(
            "duplicate", reason="similar", message=f"looks like picture {duplicate_of}", duplicate_of=duplicate_of
        )

    key, renditions = store_photo_files(data=data, verified=verified, content_hash=content_hash)

    try:
        with transaction.atomic():
            picture = Picture.objects.create(
                album=album,
                **credit(source=source, post=post, photo=photo),
                added_at=timezone.now(),
                sensitive=post.sensitive,
                width=verified.width,
                height=verified.height,
                content_hash=content_hash,
                histogram=signature.histogram,
                structure_hash=signature.structure_hash,
                original_key=key,
                colour_profile=verified.colour_profile,
                renditions=renditions,
                status=status,
            )
    except IntegrityError:
        # An overlapping run (or a retry after a crash) stored it first.
        return Outcome("duplicate", reason="concurrent", message="stored by another run")
    index.add(picture.pk, signature)
    pictures_changed(album_ids=[album.pk])  # pages, feeds and the API show it at once
    return Outcome("added", picture=picture)


def credit(*, source: str, post: Post, photo: Photo) -> dict:
    """The fields that credit a picture to the post it came from (network, author, permalink, time, text)."""
    return {
        "source": source,
        "post_id": post.id,
        "media_key": photo.media_key,
        "permalink": post.permalink,
        "author_handle": post.author_handle[:255],
        "author_name": post.author_name[:200],
        "text": post.text,
        "like_count": max(post.like_count, 0),
        "posted_at": post.posted_at,
        "alt_text": photo.alt_text,
    }


def store_photo_files(*, data: bytes, verified: VerifiedImage, content_hash: str) -> tuple[str, dict]:
    """Write a photo's renditions, then its original. Returns (original key, renditions for the row).

    Each key holds its whole content once this returns (pictures/storage.py); a crash
    before the row is inserted leaves at worst complete orphans, which prune_media removes.
    """
    renditions = {}
    for name, (jpeg, width, height) in make_renditions(verified).items():
        key = rendition_key(content_hash, name)
        store_file(key, jpeg)
        renditions[name] = {"key": key, "width": width, "height": height}
    key = original_key(content_hash, verified.format)
    store_file(key, data)
    return key, renditions


def picture_keys(picture: Picture) -> list[str]:
    return [picture.original_key, *(r["key"] for r in picture.renditions.values())]


def delete_unreferenced_files(*, content_hashes: dict[str, list[str]]) -> int:
    """Delete the files of content hashes no picture refers to any more. Returns files deleted.

    Keys are content-addressed, so the same photo in two albums shares its
    files: they go only when the last picture with that content goes. While the storage is
    down they stay behind, for prune_media.
    """
    if not content_hashes:
        return 0
    still_used = set(
        Picture.objects.filter(content_hash__in=list(content_hashes)).values_list("content_hash", flat=True)
    )
    unused = [key for content_hash, keys in content_hashes.items() if content_hash not in still_used for key in keys]
    return delete_files(unused)


def delete_pictures(*, pictures) -> int:
    """Delete pictures (a queryset) and their files. Returns how many pictures went."""
    files = {p.content_hash: picture_keys(p) for p in pictures.only("content_hash", "original_key", "renditions")}
    albums = set(pictures.values_list("album_id", flat=True))
    count, _ = pictures.delete()
    delete_unreferenced_files(content_hashes=files)
    pictures_changed(album_ids=albums)
    return count


def delete_album(*, album: Album) -> None:
    """Delete an album with its pictures, its collage and every file no other album uses."""
    delete_pictures(pictures=album.pictures.all())
    delete_collage(album=album)
    album.delete()


MANIFEST_COLUMNS = ["file", "author", "author_name", "post", "likes", "posted_at", "added_at", "alt_text"]


def album_zip(*, album: Album) -> Iterator[bytes]:
    """The album's visible originals and a CSV manifest, as a zip produced file by file
    (everhash/lib/zipstream.py): memory stays constant whatever the album's size."""
    return stream_zip(_album_entries(album))


def _album_entries(album: Album) -> Iterator[Entry]:
    # The manifest grows with the album: it is spooled to disk, not kept in memory.
    manifest = tempfile.TemporaryFile("w+", newline="", encoding="utf-8")  # noqa: SIM115  (closed below)
    # Cells come from strangers (names, alt texts): none may run as a spreadsheet formula.
    writer = SafeWriter(manifest)
    writer.writerow(MANIFEST_COLUMNS)
    for picture in album.pictures.visible().order_by("added_at", "id").iterator(chunk_size=500):
        extension = picture.original_key.rsplit(".", 1)[-1]
        name = f"{album.hashtag}/{picture.added_at:%Y%m%d-%H%M%S}-{picture.pk}.{extension}"
        # One original at a time (at most EVERHASH_MAX_IMAGE_BYTES). A missing file is left
        # out; a storage outage (StorageUnavailable) ends the stream: the zip is then visibly
        # incomplete rather than silently short.
        data = read_file(picture.original_key)
        if data is None:
            continue
        yield Entry(name, picture.added_at.timetuple()[:6], blocks_of(data))
        writer.writerow(
            [
                name,
                picture.author_handle,  # without "@": a cell starting with "@" is a formula
                picture.author_name,
                picture.permalink,
                picture.like_count,
                picture.posted_at.isoformat(),
                picture.added_at.isoformat(),
                picture.alt_text,
            ]
        )
    manifest.seek(0)
    yield Entry(f"{album.hashtag}/manifest.csv", time.localtime()[:6], _encoded_blocks(manifest))


def _encoded_blocks(manifest) -> Iterator[bytes]:
    with manifest:
        while block := manifest.read(256 * 1024):
            yield block.encode("utf-8")


@dataclass
class VerifyReport:
    """What `prune_media --verify` found and did."""

    checked: int = 0
    renditions_rebuilt: list[str] = field(default_factory=list)  # content hashes
    refetch: list[str] = field(default_factory=list)  # permalinks of rows removed to be fetched again

    @property
    def damaged(self) -> int:
        return len(self.renditions_rebuilt) + len(self.refetch)


def verify_media(*, repair: bool = True) -> VerifyReport:
    """Find pictures whose files are missing or damaged, and repair them.

    An original must hash to the row's content_hash; each rendition must decode in full at the
    row's size. Damaged renditions are rebuilt from the original. A picture whose original is
    gone cannot be rebuilt: its row is removed (not recorded as a moderator's deletion) and its
    album walks its history again, so the next fetch stores it again while the source still
    returns the post. Content shared by several albums is checked once, one original in memory at
    a time. Raises StorageUnavailable when the storage itself fails (nothing is judged damaged then).
    """
    report = VerifyReport()
    checked: set[str] = set()  # content hashes whose files were checked (and repaired) already
    pictures = Picture.objects.only(
        "id", "album_id", "source", "content_hash", "original_key", "renditions", "permalink"
    )
    for picture in pictures.order_by("pk").iterator(chunk_size=500):
        report.checked += 1
        if picture.content_hash in checked:
            continue  # the same content in another album, checked (or repaired) already
        data = read_file(picture.original_key)
        if data is None or hashlib.sha256(data).hexdigest() != picture.content_hash:
            logger.warning("Picture %s: original %s missing or damaged", picture.pk, picture.original_key)
            report.refetch.append(picture.permalink)
            if repair:
                _refetch(picture)
            continue
        checked.add(picture.content_hash)
        if all(_rendition_intact(r) for r in picture.renditions.values()):
            continue
        logger.warning("Picture %s: renditions missing or damaged; rebuilding them", picture.pk)
        report.renditions_rebuilt.append(picture.content_hash)
        if repair:
            verified = open_for_renditions(data, max_pixels=settings.EVERHASH_MAX_IMAGE_PIXELS)
            for name, (jpeg, _, _) in make_renditions(verified).items():
                store_file(rendition_key(picture.content_hash, name), jpeg, replace=True)
            # Rebuilt in sRGB, so the rows say which profile (a picture stored before they recorded it).
            Picture.objects.filter(content_hash=picture.content_hash).update(colour_profile=verified.colour_profile)
    return report


def _rendition_intact(rendition: dict) -> bool:
    data = read_file(rendition["key"])
    if data is None:
        return False
    try:
        verified = open_verified(data, max_pixels=settings.EVERHASH_MAX_IMAGE_PIXELS)
    except ImageRejected:
        return False
    return (verified.width, verified.height) == (rendition["width"], rendition["height"])


def _refetch(picture: Picture) -> None:
    """Remove a picture whose original is lost, so the album's next fetch stores it again.

    The cursors of the album's sources on the picture's network are reset: its next fetch reads
    their whole search window again, as on its first run (X bills those posts again; the pictures
    still stored are skipped, not downloaded).
    """
    Picture.objects.filter(pk=picture.pk).delete()
    network = Q(key=picture.source) | Q(key__startswith=f"{picture.source}:")
    AlbumSource.objects.filter(network, album_id=picture.album_id).update(
        newest_post_id="", backfill_token="", backfill_since_id="", backfill_done=False
    )
    pictures_changed(album_ids=[picture.album_id])
