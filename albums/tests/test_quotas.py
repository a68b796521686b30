"""Quotas per account: albums owned (staff exempt), follows, new albums per hour; paged lists."""

from __future__ import annotations

import pytest

from albums.models import Album, Follower
from albums.services import QuotaReached, create_album, follow
from everhash.testing.builders import make_album, make_picture


@pytest.fixture
def small_quotas(settings):
    settings.EVERHASH_MAX_ALBUMS_PER_USER = 3
    settings.EVERHASH_MAX_FOLLOWS_PER_USER = 2


def test_an_account_owns_at_most_the_quota_of_albums(owner, small_quotas):
    for n in range(3):
        create_album(owner=owner, hashtag=f"tag{n}")
    with pytest.raises(QuotaReached, match="You have 3 albums, the most one account can have"):
        create_album(owner=owner, hashtag="onemore")
    assert not Album.objects.filter(hashtag="onemore").exists()


def test_the_default_quota_is_twenty_albums(settings):
    assert settings.EVERHASH_MAX_ALBUMS_PER_USER == 20


def test_staff_have_no_album_quota(staff, small_quotas):
    for n in range(5):
        create_album(owner=staff, hashtag=f"tag{n}")
    assert Album.objects.filter(owner=staff).count() == 5


def test_an_account_follows_at_most_the_quota_of_albums(owner, other, small_quotas):
    albums = [make_album(owner=owner, hashtag=f"tag{n}") for n in range(3)]
    follow(album=albums[0], user=other)
    follow(album=albums[1], user=other)
    follow(album=albums[1], user=other)  # again: nothing changes, no error
    with pytest.raises(QuotaReached, match="You follow 2 albums"):
        follow(album=albums[2], user=other)
    assert Follower.objects.filter(user=other).count() == 2


# --- Through the site and the API -----------------------------------------------------------------


def test_the_add_form_says_when_the_quota_is_reached(client, owner, small_quotas):
    for n in range(3):
        make_album(owner=owner, hashtag=f"tag{n}")
    client.force_login(owner)
    response = client.post("/album/add/onemore/", follow=True)
    assert "You have 3 albums, the most one account can have" in response.content.decode()
    assert not Album.objects.filter(hashtag="onemore").exists()


def test_the_api_refuses_an_album_over_the_quota_with_a_clear_error(owner, small_quotas):
    from django.test import Client

    from users.models import ApiToken

    for n in range(3):
        make_album(owner=owner, hashtag=f"tag{n}")
    key = ApiToken.objects.issue(user=owner, name="t")[1]
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post(
        "/api/v1/albums/", {"hashtag": "onemore"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json() == {
        "detail": "You have 3 albums, the most one account can have: delete one you no longer need to add another."
    }
    assert not Album.objects.filter(hashtag="onemore").exists()


def test_new_albums_are_limited_per_hour_on_the_form_and_the_api_alike(client, staff, settings, still_clock):
    from django.test import Client

    from users.models import ApiToken

    settings.EVERHASH_RATE_LIMITS = {**settings.EVERHASH_RATE_LIMITS, "album_create": {"user": (2, 3600)}}
    client.force_login(staff)  # staff have no quota, but the brake holds for everyone
    assert client.post("/album/add/first/").status_code == 302
    api = Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.objects.issue(user=staff, name='t')[1]}")
    assert api.post("/api/v1/albums/", {"hashtag": "second"}, content_type="application/json").status_code == 201
    response = api.post("/api/v1/albums/", {"hashtag": "third"}, content_type="application/json")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    response = client.post("/album/add/fourth/", follow=True)
    assert "Too many new albums" in response.content.decode()
    assert set(Album.objects.values_list("hashtag", flat=True)) == {"first", "second"}


def test_following_past_the_quota_says_so(client, owner, other, small_quotas):
    for n in range(3):
        make_album(owner=owner, hashtag=f"tag{n}")
    client.force_login(other)
    for n in range(2):
        client.post(f"/album/tag{n}/follow/")
    response = client.post("/album/tag2/follow/", follow=True)
    assert "You follow 2 albums" in response.content.decode()
    assert Follower.objects.filter(user=other).count() == 2


def test_the_index_is_paged(client, owner, settings):
    for n in range(60):
        # With a picture each: albums with nothing to show are not listed (docs/pages.md).
        make_picture(album=make_album(owner=owner, hashtag=f"tag{n:02d}"))
    first = client.get("/").content.decode()
    second = client.get("/?page=2").content.decode()
    assert "?page=2" in first
    shown_first = {n for n in range(60) if f"#tag{n:02d} " in first}
    shown_second = {n for n in range(60) if f"#tag{n:02d} " in second}
    assert shown_first and shown_second and not shown_first & shown_second
    assert len(shown_first) < 60


def test_the_dashboard_is_paged(client, staff):
    for n in range(60):
        make_album(owner=staff, hashtag=f"tag{n:02d}")
    client.force_login(staff)
    first = client.get("/accounts/albums/").content.decode()
    assert "#tag00 " in first and "#tag59 " not in first
    assert "#tag59 " in client.get("/accounts/albums/?owned=2").content.decode()
