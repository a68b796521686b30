"""The owner's sources page, and what the dashboard, the album page and the add-album page say about sources."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from everhash.testing.builders import make_picture
from tweets.models import AlbumSource
from tweets.services import source_rows

URL = "/accounts/albums/sunset/sources/"


@pytest.fixture
def two_instances(settings):
    settings.EVERHASH_MASTODON_INSTANCES = ["https://mastodon.example", "https://photos.example"]
    settings.EVERHASH_X_BEARER_TOKEN = ""


def test_the_owner_sees_each_source_and_switches_one_off(client, owner, album, two_instances):
    AlbumSource.objects.create(
        album=album,
        key="mastodon:mastodon.example",
        last_fetch_at=timezone.now(),
        last_status="ok",
        last_posts=12,
        last_added=9,
    )
    client.force_login(owner)

    page = client.get(URL).content.decode()
    response = client.post(URL, {"source": ["sample", "mastodon:mastodon.example"]})

    assert "mastodon.example" in page and "12 posts, 9 pictures" in page and "photos.example" in page
    assert "X: not searched, no token configured" in page
    assert "Sample posts: not searched, sample posts exist only for the demo albums" in page
    assert response.status_code == 302
    enabled = dict(AlbumSource.objects.filter(album=album).values_list("key", "enabled"))
    assert enabled == {"mastodon:mastodon.example": True, "mastodon:photos.example": False}


def test_a_switched_off_source_stays_off_and_a_new_one_joins(owner, album, two_instances, settings):
    AlbumSource.objects.create(album=album, key="mastodon:photos.example", enabled=False)
    settings.EVERHASH_MASTODON_INSTANCES.append("https://new.example")

    rows = source_rows(album=album, keys=["mastodon:photos.example", "mastodon:new.example"])

    assert (rows["mastodon:photos.example"].enabled, rows["mastodon:new.example"].enabled) == (False, True)


@pytest.mark.parametrize("role", ["anonymous", "other"])
def test_strangers_cannot_see_or_change_the_sources(client, other, album, two_instances, role):
    if role == "other":
        client.force_login(other)
    assert client.get(URL).status_code in (302, 404)
    assert client.post(URL, {"source": []}).status_code in (302, 404)
    assert not AlbumSource.objects.filter(enabled=False).exists()


def test_the_dashboard_and_album_page_say_what_each_source_found(client, owner, album, two_instances):
    now = timezone.now()
    AlbumSource.objects.create(
        album=album,
        key="mastodon:mastodon.example",
        last_fetch_at=now - timedelta(minutes=5),
        last_status="ok",
        last_posts=12,
        last_added=9,
    )
    AlbumSource.objects.create(
        album=album,
        key="mastodon:photos.example",
        last_fetch_at=now,
        last_status="failed",
        last_error="Could not reach photos.example",
    )

    public = client.get("/album/sunset/").content.decode()
    client.force_login(owner)
    dashboard = client.get("/accounts/albums/").content.decode()

    assert "mastodon.example: searched" in public and "5\xa0minutes ago" in public and "12 posts, 9 pictures" in public
    assert "not answering at the moment" in public and "Could not reach" not in public
    assert "photos.example: searched" in dashboard and "failed: Could not reach photos.example" in dashboard


def test_the_add_page_promises_only_the_sources_that_will_be_searched(client, owner, two_instances):
    client.force_login(owner)
    page = client.get("/album/add/ourwedding2026/").content.decode()
    demo = client.get("/album/add/EverhashDemo/", follow=True).content.decode()

    assert "searches <strong>mastodon.example</strong>, <strong>photos.example</strong> for posts" in page
    assert "X: not searched, no token configured" in page
    assert "Sample posts: not searched, sample posts exist only for the demo albums" in page
    # The demo hashtag, however it is typed, is promised the sample posts.
    assert "<strong>Sample posts</strong>, <strong>mastodon.example</strong>" in demo
    assert "Bluesky" not in page or "not searched, no account configured" in page


def test_cards_name_each_pictures_network_and_a_mastodon_author_has_a_page(client, album):
    make_picture(album=album, source="x", author_handle="ann")
    make_picture(
        album=album,
        source="mastodon",
        post_id="https://mastodon.example/users/bo/statuses/1",
        author_handle="bo@mastodon.example",
    )

    page = client.get("/album/sunset/").content.decode()
    by_author = client.get("/album/sunset/by/bo%40mastodon.example/")

    assert 'title="Posted on Mastodon">Mastodon</span>' in page and 'title="Posted on X (Twitter)">X</span>' in page
    assert by_author.status_code == 200
    body = by_author.content.decode()
    assert "@bo@mastodon.example" in body and "@ann" not in body
