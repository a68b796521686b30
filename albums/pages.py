"""What the album pages show, computed in a constant number of queries.

Kept apart from views.py so the views only parse requests and render; the
same helpers feed the JSON feed of the slideshow.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from albums.models import Album
from collages.models import Collage
from pictures.models import Picture, Source
from pictures.storage import signed_url_window

CHART_DAYS = 30
# How long derived figures (chart, counts, rendered pages) stay in the cache; their keys carry
# the album's pictures_version, so a change shows at once whatever this is.
CACHE_SECONDS = 300


@dataclass(frozen=True)
class Progress:
    count: int
    next_threshold: int | None
    previous_threshold: int
    percent: int


def milestone_progress(count: int) -> Progress:
    """How far the album is from its next milestone (None once past the last one)."""
    previous = 0
    for threshold in settings.EVERHASH_MILESTONES:
        if count < threshold:
            span = threshold - previous
            return Progress(count, threshold, previous, int(100 * (count - previous) / span))
        previous = threshold
    return Progress(count, None, previous, 100)


@dataclass(frozen=True)
class Bar:
    day: date
    count: int
    x: int
    y: int
    height: int


def daily_chart(*, album: Album, days: int = CHART_DAYS, width: int = 300, height: int = 60) -> list[Bar]:
    """Pictures added per day over the last `days` days, as SVG bar geometry.

    One query over the index range of the last `days` days, counting each day with a
    conditional aggregate (grouping by a date function would run it on every row, which
    SQLite cannot do from an index), cached per album version and day.
    """
    today = timezone.localdate()
    start = today - timedelta(days=days - 1)
    key = f"everhash:chart:{album.pk}:{album.pictures_version}:{today}:{days}"
    counts = cache.get(key)
    if counts is None:
        zone = timezone.get_current_timezone()
        edges = [datetime.combine(start + timedelta(days=i), time.min, tzinfo=zone) for i in range(days + 1)]
        totals = (
            album.pictures.visible()
            .filter(added_at__gte=edges[0], added_at__lt=edges[-1])
            .aggregate(
                **{
                    f"d{i}": Count("id", filter=Q(added_at__gte=edges[i], added_at__lt=edges[i + 1]))
                    for i in range(days)
                }
            )
        )
        counts = [totals[f"d{i}"] for i in range(days)]
        cache.set(key, counts, CACHE_SECONDS)
    peak = max(counts, default=0) or 1
    step = width // days
    bars = []
    for i, n in enumerate(counts):
        h = round((height - 2) * n / peak) if n else 0
        bars.append(Bar(day=start + timedelta(days=i), count=n, x=i * step, y=height - h, height=h))
    return bars


def cover(*, album: Album) -> dict | None:
    """The album's face: its collage, or its most-liked picture until a collage exists."""
    collage = Collage.objects.filter(album=album).first()
    if collage is not None:
        return {"url": collage.image_url, "width": 1200, "height": 630, "is_collage": True}
    top = album.pictures.visible().most_liked().first()
    if top is None:
        return None
    large = top.rendition("medium") or top.rendition("large")
    if large is None:
        return None
    return {
        "url": top.storage_url(large["key"]),
        "width": large["width"],
        "height": large["height"],
        "is_collage": False,
        "picture": top,
    }


def album_etag(*, album: Album, extra: str = "") -> str:
    """A validator for the album's pages: the album's own fields and its pictures' version,
    which every change to its pictures bumps (AlbumQuerySet.bump_version)."""
    parts = [
        album.pk,
        album.title,
        album.description,
        album.visibility,
        album.secret,  # links inside an unlisted album carry it
        album.is_active,
        album.last_fetch_at,
        album.next_fetch_at,
        album.pictures_version,
        timezone.localdate(),  # relative times ("2 hours ago") and the daily chart move on
        signed_url_window(),  # the page embeds signed media URLs: renewed before they expire
        extra,
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def neighbours(picture) -> tuple:
    """The visible pictures just newer and just older than `picture` in its album (None at an end)."""
    visible = picture.album.pictures.visible()
    same_time = Q(added_at=picture.added_at)
    newer = (
        visible.filter(Q(added_at__gt=picture.added_at) | same_time & Q(id__gt=picture.pk))
        .order_by("added_at", "id")
        .first()
    )
    older = visible.filter(Q(added_at__lt=picture.added_at) | same_time & Q(id__lt=picture.pk)).newest_first().first()
    return newer, older


@dataclass(frozen=True)
class SearchReport:
    """What an album without pictures can tell: its last search and the next one."""

    where: str
    last_run: object | None  # tweets.FetchRun, read through the album's reverse relation
    interval_minutes: int


def search_report(*, album: Album) -> SearchReport:
    """The album's latest search (through `album.fetch_runs`, so this layer imports nothing of
    tweets/) and where it went: the source that run recorded (`x`, `sample`, or the Mastodon
    instance or Bluesky service of `mastodon:<host>`, `bluesky:<host>`). Before any run, the
    page names the sources the next one asks (the `available_sources` of every template)."""
    run = album.fetch_runs.order_by("-started").first()
    where = ""
    if run is not None:
        where = Source(run.source).label if run.source in Source.values else run.source.partition(":")[2]
    return SearchReport(
        where=where,
        last_run=run,
        interval_minutes=settings.EVERHASH_FETCH_INTERVAL_MINUTES,
    )


def author_pictures(*, album: Album, handle: str):
    """An author's visible pictures, newest first. Links carry the handle as stored: an exact
    match, from picture_author_idx; a handle typed in another case falls back to a
    case-insensitive match (which SQLite answers by reading every picture of the album)."""
    pictures = album.pictures.visible().newest_first()
    exact = pictures.filter(author_handle=handle)
    return exact if exact.exists() else pictures.filter(author_handle__iexact=handle)


def listed_albums():
    """The index's albums: public ones, the most active this week first, with their stored count
    (Album.visible_count), this week's count and the newest picture's time, each a subquery along
    picture_newest_idx (an index range or a single seek per album, never the album's every row)."""
    week_ago = timezone.now() - timedelta(days=7)
    newest = Picture.objects.visible().filter(album=OuterRef("pk")).newest_first().values("added_at")[:1]
    return (
        Album.objects.public()
        .select_related("collage")
        .annotate(recent_count=Picture.objects.visible_count(since=week_ago), last_added=Subquery(newest))
        .filter(visible_count__gt=0)  # an empty album has nothing to show a visitor yet
        .order_by("-recent_count", "-visible_count", "hashtag")
    )


def index_etag(*, extra: str = "") -> str:
    """A validator for the index: what it shows of each public album (a change to one moves its
    `pictures_version`: pictures, cover), the minute (the week's counts and "updated 3 minutes
    ago" move on with time), the signed media URLs' window and `extra` (the page number). One
    small query, no picture row."""
    albums = list(Album.objects.public().order_by("pk").values_list("pk", "hashtag", "title", "pictures_version"))
    parts = [albums, timezone.now().replace(second=0, microsecond=0), signed_url_window(), extra]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def visible_pictures(album: Album, order: str = "newest"):
    pictures = album.pictures.visible()
    return pictures.most_liked() if order == "liked" else pictures.newest_first()


ORDERS = {"newest": "Newest", "liked": "Most liked"}
