"""An album's collage: its best visible pictures composed into a share image and a square cover.

Who calls what:
- `fetch_tweets` and moderation set `Album.collage_stale` when an album's pictures change;
- `build_stale_collages()` (the `build_collages` command, and `fetch_tweets` at the end of its
  run) rebuilds the stale ones; `build_collage()` builds one album.

Order of writes, so overlapping or interrupted runs stay harmless:
1. the stale flag is claimed (cleared) before the pictures are read, so a change made while we
   build sets it again and the next run picks the album up; a build that fails sets it again;
2. files go to content-addressed keys (the same pictures give the same bytes, hence the same key);
3. the Collage row is updated only if it is still the one read at the start, otherwise another
   run got there first and the album is marked stale for the next run to settle;
4. the files of the previous collage are deleted, unless another album's collage uses them (two
   albums with the same pictures share the same files).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from django.db.models import Q
from django.utils import timezone
from PIL import Image

from albums.models import Album
from collages import builder
from collages.models import Collage
from pictures.models import Picture
from pictures.storage import delete_files, read_file, store_file

logger = logging.getLogger("everhash.collages")

# Renditions a tile may be cut from, smallest first: the smallest that covers the tile wins.
RENDITIONS = ("medium", "large")
# How far down the ranking to look for pictures whose files can be read.
MAX_CANDIDATES = 4 * builder.MAX_PICTURES


class Outcome(StrEnum):
    BUILT = "built"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    EMPTY = "empty"
    CONFLICT = "conflict"
    FAILED = "failed"


@dataclass(frozen=True)
class CollageResult:
    album: Album
    outcome: Outcome
    collage: Collage | None = None
    error: str = ""


@dataclass
class BuildSummary:
    results: list[CollageResult] = field(default_factory=list)

    @property
    def counts(self) -> Counter[Outcome]:
        return Counter(result.outcome for result in self.results)

    @property
    def failed(self) -> list[CollageResult]:
        return [result for result in self.results if result.outcome == Outcome.FAILED]


@dataclass(frozen=True)
class Rendition:
    key: str
    width: int
    height: int

    def covers(self, size: tuple[int, int]) -> bool:
        return self.width >= size[0] and self.height >= size[1]


@dataclass(frozen=True)
class Candidate:
    """A visible picture that may be shown, with the renditions it can be cut from (smallest first)."""

    picture_id: int
    content_hash: str
    renditions: tuple[Rendition, ...]


def candidates(*, album: Album) -> list[Candidate]:
    """The album's visible pictures in collage order (most liked, then newest), with usable renditions."""
    rows = (
        Picture.objects.filter(album=album)
        .visible()
        .most_liked()
        .values_list("id", "content_hash", "renditions")[:MAX_CANDIDATES]
    )
    found = []
    for picture_id, content_hash, renditions in rows:
        usable = [r for r in (_rendition(renditions, name) for name in RENDITIONS) if r is not None]
        if usable:
            found.append(Candidate(picture_id, content_hash, tuple(sorted(usable, key=lambda r: r.width * r.height))))
        else:
            logger.warning("Collage of #%s: picture %s has no medium or large rendition", album.hashtag, picture_id)
    return found


def _rendition(renditions: object, name: str) -> Rendition | None:
    info = renditions.get(name) if isinstance(renditions, dict) else None
    try:
        return Rendition(str(info["key"]), int(info["width"]), int(info["height"])) if info else None
    except (KeyError, TypeError, ValueError):
        return None


def fingerprint(shown: Iterable[Candidate]) -> str:
    """What the collage shows, in order, and how it is drawn: equal fingerprints, equal images."""
    digest = hashlib.sha256(f"everhash collage layout {builder.LAYOUT_VERSION}\n".encode())
    for candidate in shown:
        digest.update(f"{candidate.picture_id}:{candidate.content_hash or candidate.renditions[0].key}\n".encode())
    return digest.hexdigest()


def build_collage(*, album: Album, force: bool = False) -> Collage | None:
    """Bring the album's collage up to date (rebuild it anyway with `force`); None when it has none."""
    return _build(album=album, force=force).collage


def build_stale_collages(
    *,
    force: bool = False,
    albums: Iterable[Album] | None = None,
    report: Callable[[CollageResult], None] | None = None,
) -> BuildSummary:
    """Build the collages of stale albums (or of `albums`); one failure is recorded, not fatal.

    `report` is called with each album's result as soon as it is known.
    """
    if albums is None:
        albums = Album.objects.filter(collage_stale=True).order_by("pk")
    summary = BuildSummary()
    for album in list(albums):
        try:
            result = _build(album=album, force=force)
        except Exception as exc:
            logger.exception("Collage of #%s failed", album.hashtag)
            result = CollageResult(album, Outcome.FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
        summary.results.append(result)
        if report is not None:
            report(result)
    return summary


def delete_collage(*, album: Album) -> bool:
    """Delete the album's collage row and its files (unless another collage uses them)."""
    collage = Collage.objects.filter(album=album).first()
    return collage is not None and _delete(collage)


def _build(*, album: Album, force: bool) -> CollageResult:
    Album.objects.filter(pk=album.pk, collage_stale=True).update(collage_stale=False)
    try:
        return _build_claimed(album=album, force=force)
    except BaseException:
        # Failed or interrupted (SIGTERM, Ctrl-C): leave the album for the next run.
        _mark_stale(album)
        raise


def _build_claimed(*, album: Album, force: bool) -> CollageResult:
    current = Collage.objects.filter(album=album).first()
    ranked = candidates(album=album)
    if current is not None and not force and current.fingerprint == fingerprint(ranked[: builder.MAX_PICTURES]):
        return CollageResult(album, Outcome.UNCHANGED, current)

    shown, images = _load(album=album, ranked=ranked)
    if not shown:
        if current is None:
            return CollageResult(album, Outcome.EMPTY)
        if _delete(current):
            return CollageResult(album, Outcome.REMOVED)
        _mark_stale(album)
        return CollageResult(album, Outcome.CONFLICT, Collage.objects.filter(album=album).first())
    signature = fingerprint(shown)
    if current is not None and not force and current.fingerprint == signature:
        # Some files are missing, but what can be shown is what is shown already.
        return CollageResult(album, Outcome.UNCHANGED, current)

    jpegs = builder.encode(images)
    keys = {}
    for name, suffix in (("landscape", ""), ("square", "-square"), ("square-small", "-square-400")):
        keys[name] = f"collages/{hashlib.sha256(jpegs[name]).hexdigest()}{suffix}.jpg"
        store_file(keys[name], jpegs[name])
    values = {
        "image_key": keys["landscape"],
        "square_key": keys["square"],
        "small_key": keys["square-small"],
        "fingerprint": signature,
        "picture_count": len(shown),
        "built_at": timezone.now(),
    }
    if current is None:
        collage, saved = Collage.objects.get_or_create(album=album, defaults=values)
    else:
        # Only over the row read at the start: a run that wrote in the meantime wins, and
        # the album is built again next run from whatever the pictures are by then.
        unchanged = Collage.objects.filter(
            pk=current.pk,
            fingerprint=current.fingerprint,
            image_key=current.image_key,
            square_key=current.square_key,
            small_key=current.small_key,
        )
        saved = bool(unchanged.update(**values))
        collage = Collage.objects.filter(album=album).first()
    if not saved:
        logger.info("Collage of #%s was changed by another run; it will be built again", album.hashtag)
        _mark_stale(album)
        _delete_files(keys.values())
        return CollageResult(album, Outcome.CONFLICT, collage)
    if current is not None:
        _delete_files([current.image_key, current.square_key, current.small_key])
    _cover_changed(album)
    return CollageResult(album, Outcome.BUILT, collage)


def _load(*, album: Album, ranked: list[Candidate]) -> tuple[list[Candidate], list[Image.Image]]:
    """The pictures to show and their images: the first ones of `ranked` whose files can be read.

    Tile sizes depend on how many pictures there are, so a picture that cannot be read is
    dropped and the choice starts again (its bytes read so far are kept).
    """
    data_by_key: dict[str, bytes | None] = {}
    dropped: set[int] = set()
    while True:
        shown = [candidate for candidate in ranked if candidate.picture_id not in dropped][: builder.MAX_PICTURES]
        if not shown:
            return [], []
        images = []
        for candidate, sizes in zip(shown, builder.tile_sizes(len(shown)), strict=True):
            image = _open(album=album, candidate=candidate, sizes=sizes, data_by_key=data_by_key)
            if image is None:
                dropped.add(candidate.picture_id)
                break
            images.append(image)
        else:
            return shown, images


def _open(
    *, album: Album, candidate: Candidate, sizes: list[tuple[int, int]], data_by_key: dict[str, bytes | None]
) -> Image.Image | None:
    """The candidate's image for tiles of `sizes`, from the smallest rendition covering them all."""
    covering = [r for r in candidate.renditions if all(r.covers(size) for size in sizes)]
    others = [r for r in reversed(candidate.renditions) if r not in covering]
    for rendition in covering + others:
        if rendition.key not in data_by_key:
            data_by_key[rendition.key] = _read(rendition.key)
            if data_by_key[rendition.key] is None:
                logger.warning("Collage of #%s: %s is missing; skipped", album.hashtag, rendition.key)
        data = data_by_key[rendition.key]
        if data is None:
            continue
        try:
            return builder.open_rendition(data, sizes=sizes)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            logger.warning("Collage of #%s: %s cannot be decoded (%s); skipped", album.hashtag, rendition.key, exc)
            data_by_key[rendition.key] = None
    return None


def _read(key: str) -> bytes | None:
    """A stored file's bytes, None when it does not exist (StorageUnavailable when the store fails:
    the build fails and the album stays stale for the next run)."""
    return read_file(key)


def _delete(collage: Collage) -> bool:
    """Delete the row, if no other run changed it since it was read, then its unused files."""
    deleted, _ = Collage.objects.filter(pk=collage.pk, fingerprint=collage.fingerprint).delete()
    if deleted:
        _delete_files([collage.image_key, collage.square_key, collage.small_key])
        _cover_changed(collage.album)
    return bool(deleted)


def _delete_files(keys: Iterable[str]) -> None:
    """Delete the files no collage uses (while the store is down they stay, for prune_media)."""
    delete_files(
        key
        for key in set(keys)
        if key and not Collage.objects.filter(Q(image_key=key) | Q(square_key=key) | Q(small_key=key)).exists()
    )


def _cover_changed(album: Album) -> None:
    """The album's pages show a new cover: move the version their caches and ETags follow on
    (without marking the collage stale, which would only build it again)."""
    Album.objects.filter(pk=album.pk).bump_version(collage_stale=False)


def _mark_stale(album: Album) -> None:
    Album.objects.filter(pk=album.pk).update(collage_stale=True)
