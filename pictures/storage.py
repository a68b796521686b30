"""Media storage: the one module that knows what a storage backend (local folder or S3) can do.

- Writes carry our own Content-Type, from the key's extension (never guessed from the bytes);
  S3's long Cache-Control comes from AWS_S3_OBJECT_PARAMETERS (every key is content-addressed).
- Any failure of the store itself (S3 down, refused, timing out; a full or read-only disk) is
  raised as `StorageUnavailable`, an OSError: a fetch then fails the album, which keeps its
  cursor and retries with back-off, instead of rejecting the picture for good.
- A key holds its whole content or does not exist: local files are written under a temporary
  name, fsynced and renamed (a kill -9 or a full disk mid-write leaves no short file under the
  key); an S3 PUT is atomic. An existing key is trusted only once verified complete (`holds`).
- `prune()` removes objects no row refers to (`manage.py prune_media`); `pictures.services.verify_media` finds rows
  whose files are missing or damaged and repairs them (`manage.py prune_media --verify`).
- `signed_url_window()` lets cached pages never outlive the signed URLs they embed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.utils import timezone
from django.utils._os import safe_makedirs

logger = logging.getLogger("everhash.storage")

T = TypeVar("T")

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


def _unless_missing(action: str, key: str, call: Callable[[], T]) -> T | None:
    """call()'s result, None when the object does not exist; StorageUnavailable when the store fails."""
    with _unavailable_on_error(action, key):
        try:
            return call()
        except _STORE_ERRORS as exc:
            if _is_missing(exc):
                return None
            raise


def modified_time(key: str) -> datetime | None:
    """When the object was last written, None when it does not exist."""
    return _unless_missing("stat", key, lambda: default_storage.get_modified_time(key))


def store_file(key: str, data: bytes, *, replace: bool = False) -> None:
    """Write bytes under a content-addressed key: afterwards the key holds exactly these bytes.

    A key never holds part of its content, even if the process is killed or the disk fills up
    mid-write: local files are written under a temporary name, flushed to disk and renamed into
    place; an S3 PUT is atomic by itself. An existing key is kept only when it is verified
    complete (its size, and for an original the hash its key names); else it is written again.
    `replace` writes it in any case (a repair: the stored bytes are known to be damaged).
    """
    typed = _TypedContent(data, content_type(key))  # also refuses a key we could not serve
    with _unavailable_on_error("write", key):
        if getattr(default_storage, "file_overwrite", False):
            # An object store that overwrites (S3, AWS_S3_FILE_OVERWRITE): one PUT, no HEAD first.
            # A key that exists already holds these bytes; writing it again also renews its
            # modified time, as a refresh does. Saves a round trip per object (5 per picture).
            default_storage.save(key, typed)
            return
        path = _local_path(key)
        if path is None:  # pragma: no cover  (neither a local folder nor an overwriting object store)
            raise ValueError(f"Unsupported storage backend {type(default_storage).__name__}")
        modified = None if replace else modified_time(key)
        if modified is not None and holds(key, data):
            if modified < timezone.now() - REFRESH_AFTER:
                os.utime(path)  # about to be referenced again: prune_media must not take it now
            return
        if modified is not None:
            logger.warning("%s was incomplete or damaged; writing it again", key)
        _write_atomically(path, data)


def _local_path(key: str) -> Path | None:
    try:
        return Path(default_storage.path(key))
    except NotImplementedError:
        return None


TEMPORARY_SUFFIX = ".partial"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write a file so that `path` either holds all of `data` or is left as it was.

    The bytes go to a temporary name in the same folder (prune_media removes one left by a
    killed process), are flushed and fsynced, then renamed over `path`; the folder is fsynced
    so the rename itself survives a power cut.
    """
    storage = default_storage
    folder = path.parent
    if storage.directory_permissions_mode is not None:
        safe_makedirs(folder, storage.directory_permissions_mode, exist_ok=True)
    else:
        folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{path.name}.{secrets.token_hex(8)}{TEMPORARY_SUFFIX}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if storage.file_permissions_mode is not None:
            os.chmod(temporary, storage.file_permissions_mode)
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def holds(key: str, data: bytes) -> bool:
    """Whether the stored object is complete: it has the size of `data` and, for an original, the hash its key names."""
    size = stored_size(key)
    if size != len(data):
        return False
    expected = original_hash(key)
    if expected is None:
        return True
    return _stored_sha256(key) == expected


def original_hash(key: str) -> str | None:
    """The SHA-256 an original's key names (originals/ab/<hash>.jpg), None for other keys."""
    if not key.startswith("originals/"):
        return None
    return posixpath.basename(key).split(".", 1)[0]


def stored_size(key: str) -> int | None:
    """The stored object's size in bytes, None when it does not exist."""
    return _unless_missing("stat", key, lambda: default_storage.size(key))


def _stored_sha256(key: str) -> str | None:
    def digest() -> str:
        sha256 = hashlib.sha256()
        with default_storage.open(key, "rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                sha256.update(chunk)
        return sha256.hexdigest()

    return _unless_missing("read", key, digest)


def read_file(key: str) -> bytes | None:
    """A stored object's bytes, None when it does not exist."""

    def read() -> bytes:
        with default_storage.open(key, "rb") as file:
            return file.read()

    return _unless_missing("read", key, read)


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
