"""The move of the album-level cursors into tweets.AlbumSource keeps where each album was."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [
    ("albums", "0007_milestone_delivery"),
    ("pictures", "0004_fediverse_sources"),
    ("tweets", "0005_album_sources"),
]
AFTER = [("albums", "0008_per_source_state")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_each_album_keeps_its_cursor_under_the_source_that_made_it():
    old = migrate(BEFORE)
    user = old.get_model("users", "User").objects.create(email="o@example.com", name="O")
    Album = old.get_model("albums", "Album")
    on_x = Album.objects.create(
        owner=user, hashtag="sunset", newest_post_id="1900", backfill_token="b2", backfill_since_id="1800"
    )
    demo = Album.objects.create(owner=user, hashtag="everhashdemo", backfill_token="sample-page-2")
    Album.objects.create(owner=user, hashtag="catsofeverhash", newest_post_id="7", backfill_done=True)
    Album.objects.create(owner=user, hashtag="never")
    for album, source in ((on_x, "x"), (demo, "sample")):
        old.get_model("pictures", "Picture").objects.create(
            album=album, source=source, post_id="1", media_key="3_1", permalink="https://x.com/a/status/1",
            author_handle="a", posted_at="2026-11-01T00:00:00Z", added_at="2026-11-01T00:00:00Z",
            width=1, height=1, content_hash="0" * 64, histogram=b"", structure_hash="", original_key="o",
        )  # fmt: skip

    new = migrate(AFTER)
    rows = {
        (row.album.hashtag, row.key): (row.newest_post_id, row.backfill_token, row.backfill_since_id, row.backfill_done)
        for row in new.get_model("tweets", "AlbumSource").objects.select_related("album")
    }

    assert rows == {
        ("sunset", "x"): ("1900", "b2", "1800", False),
        ("everhashdemo", "sample"): ("", "sample-page-2", "", False),
        ("catsofeverhash", "sample"): ("7", "", "", True),  # no picture yet: a sample hashtag
    }
    # And back: the album-level cursors return.
    old = migrate(BEFORE)
    restored = old.get_model("albums", "Album").objects.get(hashtag="sunset")
    assert (restored.newest_post_id, restored.backfill_token) == ("1900", "b2")
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
