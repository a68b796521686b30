"""What fetch_tweets costs in X requests and posts read (X bills every post read), per situation.

The figures are measured against the loopback fake X API (which counts every request and every
post it returns) and must equal both what FetchRun recorded and the table in docs/fetching.md:

    .venv/bin/pytest tweets/tests/test_fetch_costs.py -v

An album has been fetched once (30 posts, its cursor saved) before each situation.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from django.db.models import Sum

from albums.models import Album
from everhash.testing.builders import album_source, make_album
from everhash.testing.fixtures import fetch_tweets
from tweets.models import AlbumSource, FetchRun, SourcePause

PAGE = 100  # max_results
DOC = Path(__file__).resolve().parents[2] / "docs" / "fetching.md"

# situation: (new posts, [(requests, posts read) per run])
TABLE = {
    "nothing new": (0, [(1, 0)]),
    "20 new": (20, [(1, 20)]),
    "overflow: 250 new, --max-pages 2": (250, [(2, 200), (2, 50)]),
    "429, two albums due": (20, [(1, 0)]),
    "usage cap (then the next run)": (20, [(1, 0), (0, 0)]),
    "503 that lasts": (20, [(4, 0)]),
    "503 once": (20, [(2, 20)]),
    "stale cursor (20 posts in X's window)": (20, [(2, 20)]),
    "malformed page (then the next run)": (20, [(1, 0), (1, 20)]),
}


def text_posts(fake_x, count: int, tag: str = "sunset") -> None:
    for _ in range(count):
        fake_x.add_post(tag=tag)


@pytest.fixture
def fetched(x_settings, fake_x, owner):
    """An album fetched once: 30 posts read, its cursor saved; the counters start from zero."""
    album = make_album(owner=owner, hashtag="sunset")
    text_posts(fake_x, 30)
    fetch_tweets()
    FetchRun.objects.all().delete()
    fake_x.requests.clear()
    return album


class Meter:
    def __init__(self, fake_x) -> None:
        self.fake_x = fake_x
        self.runs: list[tuple[int, int]] = []
        self._seen = (0, 0)

    def run(self, *args: str) -> None:
        """The next cron run, once every back-off is over."""
        Album.objects.update(next_fetch_at=None)
        AlbumSource.objects.update(next_fetch_at=None)
        fetch_tweets(*args)
        requests, posts = len(self.fake_x.search_requests()), self.fake_x.posts_returned()
        self.runs.append((requests - self._seen[0], posts - self._seen[1]))
        self._seen = (requests, posts)


def situation(name: str, fake_x, owner) -> list[tuple[int, int]]:
    meter = Meter(fake_x)
    new = TABLE[name][0]
    if name == "overflow: 250 new, --max-pages 2":
        text_posts(fake_x, new)
        meter.run("--max-pages", "2")
        meter.run("--max-pages", "2")
        return meter.runs
    text_posts(fake_x, new)
    if name == "429, two albums due":
        make_album(owner=owner, hashtag="beach", next_fetch_at=None)
        fake_x.fail_next("429", reset=int(time.time()) + 600)
        meter.run()  # the second album waits for the reset: no request
        return meter.runs
    if name == "usage cap (then the next run)":
        fake_x.fail_next("usage_cap")
        meter.run()
        meter.run()
        assert SourcePause.objects.get().kind == "usage_cap"
        return meter.runs
    if name == "503 that lasts":
        fake_x.fail_next("503", times=4)
    elif name == "503 once":
        fake_x.fail_next("503")
    elif name == "stale cursor (20 posts in X's window)":
        for album in Album.objects.all():
            album_source(album, newest_post_id="1", backfill_done=True)
        for post_id in list(fake_x._posts)[:30]:
            del fake_x._posts[post_id]  # older than 7 days: gone from recent search
        fake_x.fail_next("400")
    elif name == "malformed page (then the next run)":
        fake_x.fail_next("malformed_json")
        meter.run()
    meter.run()
    return meter.runs


@pytest.mark.parametrize("name", list(TABLE))
def test_requests_and_posts_read_per_situation(fetched, fake_x, owner, name):
    new, expected = TABLE[name]

    runs = situation(name, fake_x, owner)

    assert runs == expected
    total_posts = sum(posts for _, posts in runs)
    assert total_posts <= new + PAGE  # never more than the new posts plus one page
    recorded = FetchRun.objects.aggregate(requests=Sum("requests_made"), posts=Sum("posts_seen"))
    assert (recorded["requests"] or 0, recorded["posts"] or 0) == (sum(r for r, _ in runs), total_posts)


def test_the_table_in_the_docs_is_the_measured_one():
    text = DOC.read_text()
    for name, (new, runs) in TABLE.items():
        requests = " + ".join(str(r) for r, _ in runs)
        posts = " + ".join(str(p) for _, p in runs)
        row = rf"\|\s*{re.escape(name)}\s*\|\s*{new}\s*\|\s*{re.escape(requests)}\s*\|\s*{re.escape(posts)}\s*\|"
        assert re.search(row, text), f"docs/fetching.md lacks the row for {name!r}: {new} | {requests} | {posts}"
