"""Media storage: the one module that knows what a storage backend (local folder or S3) can do.

- Writes carry our own Content-Type, from the key's extension (never guessed from the bytes);
  S3's long Cache-Control comes from AWS_S3_OBJECT_PARAMETERS (every key is content-addressed).
- Any failure of the store itself (S3 down, refused, timing out; a full or read-only disk) is
  raised as `StorageUnavailable`, an OSError: a fetch then fails the album, which keeps its
  cursor and retries with back-off, instead of rejecting the picture for good.
- `prune()` removes objects no row refers to (`manage.py prune_media`).
- `signed_url_window()` lets cached pages never outlive the signed URLs they embed.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.utils import timezone

logger = logging.getLogger("everhash.storage")

try:  # botocore comes with django-storages' S3 backend; a local-folder install may lack it
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # pragma: no cover
    BotoCoreError = ClientError = None

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}
PREFIXES = ("originals/", "renditions/", "collages/")
# store_file writes an existing key again when it is older than this, so that its modified time
# says it is in use: prune_media (whose grace period is longer) never removes it from under a
# fetch that found it already stored and is about to insert the row referring to it.
REFRESH_AFTER = timedelta(hours=1)
MIN_GRACE = 2 * REFRESH_AFTER


class StorageUnavailable(OSError):
    """The media storage failed (down, refused, timed out, full): not the picture's fault, retry later."""


_STORE_ERRORS: tuple[type[BaseException], ...] = (OSError,) + (
    (BotoCoreError, ClientError) if BotoCoreError is not None else ()
)


def _is_missing(exc: BaseException) -> bool:
    if isinstance(exc, FileNotFoundError):
        return True
    if ClientError is not None and isinstance(exc, ClientError):
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404
    return False


@contextmanager
def _unavailable_on_error(action: str, key: str) -> Iterator[None]:
    try:
        yield
    except StorageUnavailable:
        raise
    except _STORE_ERRORS as exc:
        raise StorageUnavailable(f"Storage unavailable ({action} {key}): {type(exc).__name__}: {exc}") from exc


class _TypedContent(ContentFile):
    """Bytes with the Content-Type S3 should store (django-storages reads `content_type`)."""

    def __init__(self, data: bytes, content_type: str) -> None:
        super().__init__(data)
        self.content_type = content_type


def content_type(key: str) -> str:
    """Our Content-Type for a key, from its extension; a key we do not know how to serve is a bug."""
    extension = key.rsplit(".", 1)[-1].lower()
    try:
        return CONTENT_TYPES[extension]
    except KeyError:
        raise ValueError(f"No content type for {key!r}") from None


def modified_time(key: str) -> datetime | None:
    """When the object was last written, None when it does not exist."""
    with _unavailable_on_error("stat", key):
        try:
            return default_storage.get_modified_time(key)
        except _STORE_ERRORS as exc:
            if _is_missing(exc):
                return None
            raise


def store_file(key: str, data: bytes) -> None:
    """Write bytes under a content-addressed key; an existing key already holds these bytes."""
    typed = _TypedContent(data, content_type(key))
    with _unavailable_on_error("write", key):
        if getattr(default_storage, "file_overwrite", False):
            # An object store that overwrites (S3, AWS_S3_FILE_OVERWRITE): one PUT, no HEAD first.
            # A key that exists already holds these bytes; writing it again also renews its
            # modified time, as _refresh does. Saves a round trip per object (5 per picture).
            default_storage.save(key, typed)
            return
        modified = modified_time(key)
        if modified is not None and modified > timezone.now() - REFRESH_AFTER:
            return
        if modified is not None:
            _refresh(key, typed)
            return
        saved = default_storage.save(key, typed)
        if saved != key:
            # Another process wrote the same key between the check and save(): the storage
            # kept both; the copy under the new name is redundant.
            default_storage.delete(saved)


def _refresh(key: str, content: ContentFile) -> None:
    """Give an old object a new modified time (it is about to be referenced again)."""
    try:
        path = default_storage.path(key)
    except NotImplementedError:  # an object store: saving overwrites (AWS_S3_FILE_OVERWRITE)
        default_storage.save(key, content)
    else:
        os.utime(path)


def read_file(key: str) -> bytes | None:
    """A stored object's bytes, None when it does not exist."""
    with _unavailable_on_error("read", key):
        try:
            with default_storage.open(key, "rb") as file:
                return file.read()
        except _STORE_ERRORS as exc:
            if _is_missing(exc):
                return None
            raise


def delete_files(keys: Iterable[str]) -> int:
    """Delete objects (a missing one is fine). Returns how many were deleted.

    While the store is down the objects stay; prune_media removes them once it is back.
    """
    deleted = 0
    for key in keys:
        try:
            with _unavailable_on_error("delete", key):
                default_storage.delete(key)
        except StorageUnavailable as exc:
            logger.warning("%s; left for prune_media", exc)
            continue
        deleted += 1
    return deleted


def signed_url_window() -> int:
    """Which half-lifetime window signed media URLs are in; 0 when media URLs do not expire.

    Cached pages and ETags that embed media URLs carry it: a copy made in one window is never
    served after the next one starts, so every URL it holds has at least half its lifetime left.
    """
    storage = storages["default"]  # the instance behind default_storage
    signed = getattr(storage, "querystring_auth", False) and (
        not getattr(storage, "custom_domain", None) or getattr(storage, "cloudfront_signer", None)
    )
    if not signed:
        return 0
    half = max(int(storage.querystring_expire) // 2, 1)
    return int(timezone.now().timestamp()) // half


def private_url(key: str, *, seconds: int = 300) -> str | None:
    """A signed URL of an object that must not be public (an original), valid for `seconds`, straight
    from the bucket even when a CDN domain serves the rest; None for a local folder, whose private
    files the app itself serves after checking access (pictures.views.original)."""
    storage = storages["default"]
    connection = getattr(storage, "connection", None)
    if connection is None or not hasattr(storage, "bucket_name"):
        return None
    with _unavailable_on_error("sign", key):
        return connection.meta.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": storage.bucket_name, "Key": storage._normalize_name(key)},
            ExpiresIn=seconds,
        )


# Pruning.


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


@dataclass
class PruneReport:
    scanned: int = 0
    referenced: int = 0
    young: int = 0
    removed: int = 0
    removed_bytes: int = 0
    removed_keys: list[str] = field(default_factory=list)


def stored_objects(prefix: str) -> Iterator[StoredObject]:
    """Every object under a prefix ("originals/"...), with its size and modified time.

    On S3, one LIST call per 1000 objects (listing "directories" would cost one call per
    picture, since each picture's renditions sit under their own prefix); elsewhere the
    storage API's listdir, recursively.
    """
    storage = default_storage
    bucket = getattr(storage, "bucket", None)
    with _unavailable_on_error("list", prefix):
        if bucket is not None and hasattr(bucket, "objects"):
            location = (getattr(storage, "location", "") or "").strip("/")
            full = f"{location}/{prefix}" if location else prefix
            for summary in bucket.objects.filter(Prefix=full):
                key = summary.key[len(location) + 1 :] if location else summary.key
                yield StoredObject(key, summary.size, summary.last_modified)
            return
        yield from _walk(prefix.rstrip("/"))


def _walk(folder: str) -> Iterator[StoredObject]:
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in sorted(files):
        key = posixpath.join(folder, name)
        try:
            yield StoredObject(key, default_storage.size(key), default_storage.get_modified_time(key))
        except FileNotFoundError:
            continue  # deleted meanwhile
    for name in sorted(folders):
        yield from _walk(posixpath.join(folder, name))


def referenced_keys() -> set[str]:
    """Every key a row refers to: pictures' originals and renditions, collages of every size."""
    from collages.models import Collage
    from pictures.models import Picture

    keys: set[str] = set()
    for original, renditions in Picture.objects.values_list("original_key", "renditions").iterator(chunk_size=2000):
        keys.add(original)
        if isinstance(renditions, dict):
            keys.update(r["key"] for r in renditions.values() if isinstance(r, dict) and r.get("key"))
    for collage_keys in Collage.objects.values_list("image_key", "square_key", "small_key").iterator(chunk_size=2000):
        keys.update(collage_keys)
    keys.discard("")
    return keys


def prune(*, grace: timedelta, dry_run: bool = False) -> PruneReport:
    """Remove stored objects no row refers to and older than `grace`, under our prefixes only.

    A fetch writes its files before its row, so a young orphan may be about to be referenced:
    it is kept. Objects are listed before the rows are read, so a row inserted meanwhile is seen.
    """
    if grace < MIN_GRACE:
        raise ValueError(f"The grace period must be at least {MIN_GRACE}.")
    report = PruneReport()
    candidates = []
    cutoff = timezone.now() - grace
    for prefix in PREFIXES:
        for obj in stored_objects(prefix):
            report.scanned += 1
            candidates.append(obj)
    referenced = referenced_keys()
    for obj in candidates:
        if obj.key in referenced:
            report.referenced += 1
        elif obj.modified > cutoff:
            report.young += 1
        else:
            if not dry_run:
                with _unavailable_on_error("delete", obj.key):  # the store is down: the run stops
                    default_storage.delete(obj.key)
                logger.info("Pruned %s", obj.key)
            report.removed += 1
            report.removed_bytes += obj.size
            report.removed_keys.append(obj.key)
    return report
