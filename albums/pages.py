"""What the album pages show, computed in a constant number of queries.

Kept apart from views.py so the views only parse requests and render; the
same helpers feed the JSON feed of the slideshow.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from albums.models import Album
from collages.models import Collage

CHART_DAYS = 30


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
    """Pictures added per day over the last `days` days, as SVG bar geometry (one query)."""
    today = timezone.localdate()
    start = today - timedelta(days=days - 1)
    rows = (
        album.pictures.visible()
        .filter(added_at__date__gte=start)
        .annotate(day=TruncDate("added_at"))
        .values("day")
        .annotate(n=Count("id"))
    )
    counts = {row["day"]: row["n"] for row in rows}
    peak = max(counts.values(), default=0) or 1
    step = width // days
    bars = []
    for i in range(days):
        day = start + timedelta(days=i)
        n = counts.get(day, 0)
        h = round((height - 2) * n / peak) if n else 0
        bars.append(Bar(day=day, count=n, x=i * step, y=height - h, height=h))
    return bars


def cover(*, album: Album) -> dict | None:
    """The album's face: its collage, or its most-liked picture until a collage exists."""
    collage = Collage.objects.filter(album=album).first()
    if collage is not None:
        from django.core.files.storage import default_storage

        return {"url": default_storage.url(collage.image_key), "width": 1200, "height": 630, "is_collage": True}
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
    which every change to its pictures bumps (albums.services.pictures_changed)."""
    parts = [
        album.pk,
        album.title,
        album.description,
        album.visibility,
        album.is_active,
        album.last_fetch_at,
        album.next_fetch_at,
        album.pictures_version,
        timezone.localdate(),  # relative times ("2 hours ago") and the daily chart move on
        extra,
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def visible_pictures(album: Album, order: str = "newest"):
    pictures = album.pictures.visible()
    return pictures.most_liked() if order == "liked" else pictures.newest_first()


ORDERS = {"newest": "Newest", "liked": "Most liked"}
