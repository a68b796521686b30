"""Moderation: the one place pictures change state, authors are banned and posts taken down.

The admin (actions, the moderation grid, block lists), the owners' tools on the album page
and any future API go through these functions. Each of them:
- changes rows with conditional `update()`s (a picture already hidden is not "hidden" twice);
- writes one `ModerationAction` per album it touched (who, what, which pictures);
- marks the albums whose visible pictures may have changed `collage_stale` (the collage builder
  picks them up), and records milestones when pictures became visible (announced by the next
  `fetch_tweets` run, which sends every pending milestone).

Pages, the API, the slideshow feed, zips, counts and milestones show `Picture.objects.visible()`
only, so a change here is seen everywhere on the next request.

The fetch reads the block lists through `Policy.for_album()`: loaded once per album per run,
then consulted for each post by `tweets.services.policy_status`.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet

from albums.models import Album
from albums.services import pictures_changed, record_milestones
from collages.services import build_collage
from pictures.models import (
    BlockedAuthor,
    BlockedWord,
    DeletedMedia,
    ModerationAction,
    Picture,
    Source,
    Takedown,
    normalize_handle,
    normalize_word,
)
from pictures.services import delete_pictures

logger = logging.getLogger("everhash.moderation")

Status = Picture.Status
Kind = ModerationAction.Kind
User = AbstractBaseUser  # the acting user (users.User); None: the system

# Rows changed per statement: keeps `IN (...)` lists well within every database's limits.
CHUNK = 500
# Picture ids kept in one audit row.
AUDIT_IDS = 1000

_PERMALINK = re.compile(
    r"^(?:https?://)?(?:www\.|mobile\.)?(?:x|twitter)\.com/(?:i/web|[A-Za-z0-9_]{1,50})/status(?:es)?/(\d{1,25})"
    r"(?:[/?#].*)?$",
    re.IGNORECASE,
)
_POST_ID = re.compile(r"^\d{1,25}$")
_HANDLE = re.compile(r"^[^\s@/]{1,100}$")


class ModerationError(ValueError):
    """The input cannot be acted on (a malformed link, an empty word). The message is for people."""


# Reading the block lists during a fetch.


def _words_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for every blocked word or phrase: whole words, any case, any whitespace between."""
    parts = sorted({normalize_word(word) for word in words if word.strip()}, key=len, reverse=True)
    if not parts:
        return None
    alternatives = "|".join(r"\s+".join(re.escape(token) for token in part.split()) for part in parts)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class Policy:
    """An album's block lists for one source, loaded once per fetch (four queries)."""

    blocked_handles: frozenset[str]
    taken_down: frozenset[str]
    deleted_media: frozenset[str]
    words: re.Pattern[str] | None

    @classmethod
    def for_album(cls, album: Album, *, source: str) -> Policy:
        scope = [album.pk, 0]  # this album's lists and the global ones
        handles = BlockedAuthor.objects.filter(scope__in=scope, source=source).values_list("handle", flat=True)
        words = BlockedWord.objects.filter(scope__in=scope).values_list("word", flat=True)
        return cls(
            blocked_handles=frozenset(handles),
            taken_down=frozenset(Takedown.objects.filter(source=source).values_list("post_id", flat=True)),
            deleted_media=frozenset(
                DeletedMedia.objects.filter(album=album, source=source).values_list("media_key", flat=True)
            ),
            words=_words_pattern(words),
        )

    def is_blocked_author(self, handle: str) -> bool:
        return normalize_handle(handle) in self.blocked_handles

    def is_taken_down(self, post_id: str) -> bool:
        return post_id in self.taken_down

    def blocked_word(self, text: str) -> str | None:
        """The first blocked word or phrase found in the text, or None."""
        if self.words is None or not text:
            return None
        match = self.words.search(text)
        return match.group(0) if match else None


# Helpers.


def _audit(
    *,
    by: User | None,
    action: str,
    album: Album | None = None,
    album_id: int | None = None,
    hashtag: str = "",
    picture_ids: Sequence[int] = (),
    source: str = "",
    post_id: str = "",
    handle: str = "",
    detail: str = "",
) -> ModerationAction:
    if album is not None:
        album_id, hashtag = album.pk, album.hashtag
    return ModerationAction.objects.create(
        user=by if by is not None and by.is_authenticated else None,
        action=action,
        album_id=album_id,
        hashtag=hashtag,
        source=source,
        post_id=post_id,
        handle=handle,
        picture_ids=list(picture_ids)[:AUDIT_IDS],
        count=len(picture_ids),
        detail=detail,
    )


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _by_album(rows: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """{album id: [picture ids]} from (picture id, album id) rows."""
    grouped: dict[int, list[int]] = defaultdict(list)
    for picture_id, album_id in rows:
        grouped[album_id].append(picture_id)
    return dict(grouped)


def _hashtags(album_ids: Iterable[int]) -> dict[int, str]:
    return dict(Album.objects.filter(pk__in=list(album_ids)).values_list("pk", "hashtag"))


def _mark_stale(album_ids: Iterable[int]) -> None:
    album_ids = list(album_ids)
    if album_ids:
        pictures_changed(album_ids=album_ids)


def _set_status(
    *,
    pictures: QuerySet[Picture],
    to: str,
    sources: tuple[str, ...],
    by: User | None,
    action: str,
    detail: str = "",
    audit: bool = True,
) -> dict[int, list[int]]:
    """Move pictures whose status is one of `sources` to `to`. Returns {album id: [picture ids changed]}."""
    rows = list(pictures.filter(status__in=sources).order_by().values_list("id", "album_id"))
    changed: dict[int, list[int]] = {}
    with transaction.atomic():
        for album_id, ids in sorted(_by_album(rows).items()):
            done: list[int] = []
            for chunk in _chunks(ids):
                # Conditional: a picture another moderator changed meanwhile keeps their decision.
                locked = Picture.objects.select_for_update().filter(pk__in=chunk, status__in=sources)
                still = list(locked.values_list("id", flat=True))
                Picture.objects.filter(pk__in=still, status__in=sources).update(status=to)
                done += still
            if done:
                changed[album_id] = done
        if audit:
            hashtags = _hashtags(changed)
            for album_id, ids in changed.items():
                _audit(by=by, action=action, album_id=album_id, hashtag=hashtags.get(album_id, ""), picture_ids=ids)
        _mark_stale(changed)
    if to == Status.VISIBLE:
        for album in Album.objects.filter(pk__in=list(changed)):
            record_milestones(album=album)
    return changed


def _count(changed: dict[int, list[int]]) -> int:
    return sum(len(ids) for ids in changed.values())


# Pictures.


def approve(*, pictures: QuerySet[Picture], by: User | None) -> int:
    """Show pending pictures. Returns how many were approved."""
    return _count(
        _set_status(pictures=pictures, to=Status.VISIBLE, sources=(Status.PENDING,), by=by, action=Kind.APPROVE)
    )


def hide(*, pictures: QuerySet[Picture], by: User | None) -> int:
    """Hide visible or pending pictures (they stay stored, so they are never fetched again). Returns how many."""
    changed = _set_status(
        pictures=pictures, to=Status.HIDDEN, sources=(Status.VISIBLE, Status.PENDING), by=by, action=Kind.HIDE
    )
    _refresh_covers(changed)
    return _count(changed)


def _refresh_covers(album_ids: Iterable[int]) -> None:
    """Rebuild at once the collages that showed a picture just hidden or deleted (cover, og:image).

    Synchronous: a collage costs 0.13 to 0.5 s to build (docs/benchmarks.md), once per album
    whatever the number of pictures, and nothing when the pictures were not in it (the
    fingerprint of what it would show is unchanged). A failure leaves the collage stale for
    the next build_collages run; the pictures are hidden either way.
    """
    for album in Album.objects.filter(pk__in=list(album_ids), collage__isnull=False):
        try:
            build_collage(album=album)
        except Exception:
            logger.exception(
                "Collage of #%s not rebuilt after moderation", album.hashtag, extra={"album": album.hashtag}
            )


def unhide(*, pictures: QuerySet[Picture], by: User | None) -> int:
    """Show hidden pictures again. Returns how many."""
    return _count(
        _set_status(pictures=pictures, to=Status.VISIBLE, sources=(Status.HIDDEN,), by=by, action=Kind.UNHIDE)
    )


def delete(*, pictures: QuerySet[Picture], by: User | None) -> int:
    """Delete pictures and the files no other picture uses; their albums never fetch these photos again.

    Returns how many pictures went.
    """
    rows = list(pictures.order_by().values_list("id", "album_id", "source", "media_key", "post_id"))
    if not rows:
        return 0
    # The tombstones first: if we die after them, the pictures are still there to delete again.
    DeletedMedia.objects.bulk_create(
        [
            DeletedMedia(album_id=album_id, source=source, media_key=key, post_id=post)
            for _, album_id, source, key, post in rows
        ],
        ignore_conflicts=True,
        batch_size=CHUNK,
    )
    deleted = 0
    for chunk in _chunks([row[0] for row in rows]):
        deleted += delete_pictures(pictures=Picture.objects.filter(pk__in=chunk))
    grouped = _by_album((pk, album_id) for pk, album_id, *_ in rows)
    hashtags = _hashtags(grouped)
    for album_id, ids in grouped.items():
        _audit(by=by, action=Kind.DELETE, album_id=album_id, hashtag=hashtags.get(album_id, ""), picture_ids=ids)
    _mark_stale(grouped)
    _refresh_covers(grouped)
    return deleted


# Authors.


def clean_handle(handle: str) -> str:
    """A handle as block lists store it (no @, lowercased). Raises ModerationError when it cannot be one."""
    handle = normalize_handle(handle)
    if not _HANDLE.match(handle):
        raise ModerationError("Give the author's handle, like @someone.")
    return handle


def ban_author(
    *, source: str, handle: str, album: Album | None = None, by: User | None, reason: str = ""
) -> tuple[BlockedAuthor, int]:
    """Block an author from one album (or from every album with album=None) and hide their pictures there.

    Their future posts are skipped by the fetch. Returns the block and how many pictures were hidden.
    """
    handle = clean_handle(handle)
    with transaction.atomic():
        block, _ = BlockedAuthor.objects.get_or_create(
            album=album,
            source=source,
            handle=handle,
            defaults={"reason": reason[:500], "created_by": by if by is not None and by.is_authenticated else None},
        )
        pictures = Picture.objects.filter(source=source, author_handle__iexact=handle)
        if album is not None:
            pictures = pictures.filter(album=album)
        changed = _set_status(
            pictures=pictures,
            to=Status.HIDDEN,
            sources=(Status.VISIBLE, Status.PENDING),
            by=by,
            action=Kind.BAN,
            audit=False,
        )
        hidden = [pk for ids in changed.values() for pk in ids]
        hashtags = _hashtags(changed)
        where = ", ".join(f"#{tag}" for tag in sorted(hashtags.values()))
        _audit(
            by=by,
            action=Kind.BAN,
            album=album,
            picture_ids=hidden,
            source=source,
            handle=handle,
            detail=f"{reason}\nHid {len(hidden)} pictures{f' in {where}' if where else ''}.".strip(),
        )
    return block, len(hidden)


def pictures_a_ban_hides(*, source: str, handle: str, album: Album) -> QuerySet[Picture]:
    """The author's pictures in the album that banning them would hide (shown or waiting)."""
    return Picture.objects.filter(
        album=album,
        source=source,
        author_handle__iexact=normalize_handle(handle),
        status__in=(Status.VISIBLE, Status.PENDING),
    )


def pictures_a_ban_hid(*, source: str, handle: str, album: Album) -> QuerySet[Picture]:
    """The pictures the author's latest ban from the album hid that are still hidden (the ones a
    moderator hid for another reason, before or after, are not among them)."""
    ban = (
        ModerationAction.objects.filter(album=album, action=Kind.BAN, source=source, handle=normalize_handle(handle))
        .order_by("-pk")
        .first()
    )
    ids = ban.picture_ids if ban is not None else []
    return Picture.objects.filter(album=album, pk__in=ids, status=Status.HIDDEN)


def unban_author(*, source: str, handle: str, album: Album | None = None, by: User | None) -> int:
    """Lift a block (from one album, or the global one with album=None). Returns blocks removed.

    Their hidden pictures stay hidden: unhide the ones to show again.
    """
    handle = normalize_handle(handle)
    with transaction.atomic():
        removed, _ = BlockedAuthor.objects.filter(album=album, source=source, handle=handle).delete()
        if removed:
            _audit(by=by, action=Kind.UNBAN, album=album, source=source, handle=handle)
    return removed


# Posts.


def parse_post_reference(value: str) -> str:
    """A post id from an id or a link (x.com/twitter.com/<handle>/status/<id>). Raises ModerationError."""
    value = value.strip()
    if _POST_ID.match(value):
        return value
    match = _PERMALINK.match(value)
    if match:
        return match.group(1)
    raise ModerationError("Give a post id (digits) or a link to the post on x.com or twitter.com.")


def takedown(*, post: str, by: User | None, source: str = Source.X, reason: str = "") -> tuple[Takedown, int]:
    """Remove every picture of a post from every album (files included) and never fetch it again.

    `post` is an id or a link to the post. Returns the takedown and how many pictures were deleted.
    Safe to repeat: a second call deletes whatever an overlapping fetch stored meanwhile.
    """
    post_id = parse_post_reference(post)
    # The takedown is recorded first: from now on no fetch stores this post again.
    record, _ = Takedown.objects.get_or_create(
        source=source,
        post_id=post_id,
        defaults={"reason": reason[:500], "created_by": by if by is not None and by.is_authenticated else None},
    )
    pictures = Picture.objects.filter(source=source, post_id=post_id)
    rows = list(pictures.order_by().values_list("id", "album_id"))
    deleted = delete_pictures(pictures=Picture.objects.filter(pk__in=[pk for pk, _ in rows])) if rows else 0
    grouped = _by_album(rows)
    hashtags = _hashtags(grouped)
    where = ", ".join(f"#{tag}" for tag in sorted(hashtags.values()))
    _audit(
        by=by,
        action=Kind.TAKEDOWN,
        picture_ids=[pk for pk, _ in rows],
        source=source,
        post_id=post_id,
        detail=f"{reason}\nDeleted {deleted} pictures{f' from {where}' if where else ''}.".strip(),
    )
    return record, deleted


def lift_takedown(*, takedown: Takedown, by: User | None) -> None:
    """Let the post be fetched again (its deleted pictures come back only if a fetch sees it again)."""
    with transaction.atomic():
        _audit(by=by, action=Kind.LIFT_TAKEDOWN, source=takedown.source, post_id=takedown.post_id)
        takedown.delete()


# Words.


def clean_word(word: str) -> str:
    """A word or phrase as stored (lowercased, single spaces). Raises ModerationError when it cannot be one."""
    normalized = normalize_word(word)
    if not re.search(r"\w", normalized):
        raise ModerationError("Give a word or a phrase with at least one letter or digit.")
    if len(normalized) > 100:
        raise ModerationError("A blocked word or phrase has at most 100 characters.")
    return normalized


def block_word(*, word: str, album: Album | None = None, by: User | None) -> BlockedWord:
    """Block a word or phrase in one album's new posts (or every album's). What happens to the post
    (skipped or held for review) is the album's `blocked_words_action`."""
    normalized = clean_word(word)
    with transaction.atomic():
        blocked, created = BlockedWord.objects.get_or_create(
            album=album,
            word=normalized,
            defaults={"created_by": by if by is not None and by.is_authenticated else None},
        )
        if created:
            _audit(by=by, action=Kind.BLOCK_WORD, album=album, detail=normalized)
    return blocked


def unblock_word(*, word: str, album: Album | None = None, by: User | None) -> int:
    """Remove a blocked word (from one album's list, or the global list). Returns rows removed."""
    normalized = normalize_word(word)
    with transaction.atomic():
        removed, _ = BlockedWord.objects.filter(album=album, word=normalized).delete()
        if removed:
            _audit(by=by, action=Kind.UNBLOCK_WORD, album=album, detail=normalized)
    return removed


# Albums.


def pause(*, albums: QuerySet[Album], by: User | None) -> int:
    """Stop fetching albums. Returns how many were paused."""
    return _set_active(albums=albums, active=False, by=by)


def resume(*, albums: QuerySet[Album], by: User | None) -> int:
    """Fetch albums again (on the next run if they are due). Returns how many were resumed."""
    return _set_active(albums=albums, active=True, by=by)


def _set_active(*, albums: QuerySet[Album], active: bool, by: User | None) -> int:
    rows = list(albums.filter(is_active=not active).order_by().values_list("pk", "hashtag"))
    with transaction.atomic():
        Album.objects.filter(pk__in=[pk for pk, _ in rows]).update(is_active=active)
        for pk, hashtag in rows:
            _audit(by=by, action=Kind.RESUME if active else Kind.PAUSE, album_id=pk, hashtag=hashtag)
    return len(rows)
