"""What the event wall (the slideshow) reads: the whole album page by page, and what changed.

The wall cycles through every visible picture, newest first, one page of `PAGE_SIZE` at a
time (a keyset cursor, so pictures arriving meanwhile neither shift nor repeat a page). While
it runs it polls `feed.json?since=<journal>` with `If-None-Match`: the ETag follows the album's
`pictures_version`, so an unchanged album costs a 304. When the version moves the answer says
what changed:

- **arrivals**: the newest page (the wall shows the ids it has not seen next);
- **joined**: pictures approved or shown again since the wall's position in the moderation
  journal (`pictures.ModerationAction`, which every status change writes), whatever their age;
- **left**: the wall asks `?visible=<ids>` for the pictures it holds and drops the others
  (hidden, deleted, taken down, banned: whatever the reason, the answer is the truth).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import Q

from albums.models import Album
from everhash.emails import absolute_url
from pictures.models import ModerationAction, Picture

PAGE_SIZE = 50
# At most this many ids in one `?visible=` question (the wall holds a page and a few arrivals).
MAX_CHECKED = 200
JOINING = (ModerationAction.Kind.APPROVE, ModerationAction.Kind.UNHIDE)


def picture_json(picture: Picture) -> dict:
    """One picture as the wall shows it: the large rendition with its size, and its attribution."""
    large = picture.rendition("large") or picture.rendition("medium") or {}
    return {
        "id": picture.pk,
        "author_handle": picture.author_handle,
        "author_name": picture.author_name,
        "permalink": picture.permalink,
        "likes": picture.like_count,
        "posted_at": picture.posted_at.isoformat(),
        "added_at": picture.added_at.isoformat(),
        "alt": picture.alt,
        "url": absolute_url(picture.storage_url(large["key"])) if large else "",
        "width": large.get("width", picture.width),
        "height": large.get("height", picture.height),
    }


def encode_cursor(picture: Picture) -> str:
    """Where the next page starts: after this picture in newest-first order."""
    micros = int(picture.added_at.timestamp() * 1_000_000)
    return f"{micros}.{picture.pk}"


def decode_cursor(raw: str) -> tuple[datetime, int] | None:
    micros, _, pk = raw.partition(".")
    if not (micros.isdigit() and pk.isdigit()):
        return None
    return datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC), int(pk)


def page(*, album: Album, before: str = "") -> dict:
    """One page of the album's visible pictures, newest first, and the cursor of the next one."""
    pictures = album.pictures.visible().newest_first()
    cursor = decode_cursor(before) if before else None
    if cursor is not None:
        added_at, pk = cursor
        pictures = pictures.filter(Q(added_at__lt=added_at) | Q(added_at=added_at, id__lt=pk))
    rows = list(pictures[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return {"pictures": [picture_json(p) for p in rows], "next": encode_cursor(rows[-1]) if more else None}


def journal_position(*, album: Album) -> int:
    """The newest moderation journal entry of the album (0 when there is none)."""
    return ModerationAction.objects.filter(album=album).order_by("-pk").values_list("pk", flat=True).first() or 0


def joined_since(*, album: Album, since: int) -> list[dict]:
    """Pictures approved or shown again after journal entry `since` that are visible now, each
    with the entry that let it in (`joined`), oldest decision first."""
    actions = ModerationAction.objects.filter(album=album, action__in=JOINING, pk__gt=since).order_by("pk")
    entries = [(action_id, pk) for action_id, ids in actions.values_list("pk", "picture_ids")[:50] for pk in ids]
    entries = entries[:PAGE_SIZE]
    pictures = {p.pk: p for p in album.pictures.visible().filter(pk__in=[pk for _, pk in entries])}
    return [{**picture_json(pictures[pk]), "joined": action_id} for action_id, pk in entries if pk in pictures]


def still_visible(*, album: Album, ids: list[int]) -> list[int]:
    """Which of these pictures are visible in the album now."""
    wanted = ids[:MAX_CHECKED]
    return sorted(album.pictures.visible().filter(pk__in=wanted).values_list("pk", flat=True))


def parse_ids(raw: str) -> list[int]:
    return [int(part) for part in raw.split(",") if part.isdigit()][:MAX_CHECKED]
