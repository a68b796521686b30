"""The one access policy (Album.objects.visible_to / can_manage, albums/access.py) seen from every door,
and the one pause rule."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from albums.models import Album, Follower
from albums.services import update_milestones
from everhash.testing.builders import make_album, make_picture
from pictures.models import ModerationAction


@pytest.fixture
def unlisted(owner) -> Album:
    album = make_album(owner=owner, hashtag="hush", title="Hush", visibility=Album.Visibility.UNLISTED)
    make_picture(album=album)
    return album


def test_a_follower_opens_a_followed_unlisted_album_from_the_dashboard(client, unlisted, other):
    Follower.objects.create(album=unlisted, user=other)
    client.force_login(other)
    body = client.get("/accounts/albums/").content.decode()
    href = re.search(r'<h2><a href="([^"]*/album/hush/[^"]*)">Hush</a></h2>', body).group(1)
    assert client.get(href).status_code == 200
    assert Client().get(href).status_code == 200  # signed out too: the link carries the key


def test_the_milestone_email_links_to_an_unlisted_album_with_its_key(settings, unlisted, other):
    settings.EVERHASH_MILESTONES = [2]
    Follower.objects.create(album=unlisted, user=other)
    make_picture(album=unlisted)
    assert update_milestones(album=unlisted) == 1
    assert len(mail.outbox) == 2  # the owner and the follower
    for message in mail.outbox:
        url = re.search(r"See it here: (\S+)", message.body).group(1)
        path = url.removeprefix(settings.EVERHASH_SITE_URL)
        assert path == f"/album/hush/?key={unlisted.secret}"
        assert Client().get(path).status_code == 200


DOORS = [
    "/album/{tag}/{q}",
    "/album/{tag}/popular/{q}",
    "/album/{tag}/feed.json{q}",
    "/album/{tag}/slideshow/{q}",
    "/api/v1/albums/{tag}/{q}",
    "/api/v1/albums/{tag}/pictures/{q}",
    "/api/v1/albums/{tag}/popular/{q}",
    "/api/v1/albums/{tag}/authors/{q}",
]


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    ("who", "with_key", "status"),
    [
        ("anonymous", False, 404),
        ("other", False, 404),
        ("anonymous", True, 200),
        ("other", True, 200),
        ("owner", False, 200),
        ("staff", False, 200),
    ],
)
def test_every_door_applies_the_same_rule_to_an_unlisted_album(door, who, with_key, status, unlisted, other, staff):
    client = Client()
    if who != "anonymous":
        client.force_login({"other": other, "owner": unlisted.owner, "staff": staff}[who])
    query = f"?key={unlisted.secret}" if with_key else ""
    assert client.get(door.format(tag="hush", q=query)).status_code == status
    assert client.get(door.format(tag="hush", q="?key=wrong")).status_code == (
        200 if who in ("owner", "staff") else 404
    )


def test_a_picture_of_an_unlisted_album_needs_the_key(unlisted):
    picture = unlisted.pictures.get()
    assert Client().get(f"/api/v1/pictures/{picture.pk}/").status_code == 404
    assert Client().get(f"/api/v1/pictures/{picture.pk}/?key={unlisted.secret}").status_code == 200


def test_only_owner_and_staff_may_download_or_manage(client, unlisted, other, staff):
    client.force_login(other)
    assert client.get(f"/album/hush/download.zip?key={unlisted.secret}").status_code == 403
    assert client.get("/accounts/albums/hush/edit/").status_code == 404
    assert client.get("/album/hush/hidden/").status_code == 404
    client.force_login(staff)
    assert client.get("/accounts/albums/hush/edit/").status_code == 200
    assert Album.objects.managed_by(staff).count() == 1 and Album.objects.managed_by(other).count() == 0


def test_the_owner_pauses_and_resumes_by_the_audited_rule_that_keeps_the_schedule(client, owner, album):
    later = timezone.now() + timedelta(minutes=15)
    Album.objects.filter(pk=album.pk).update(next_fetch_at=later)
    client.force_login(owner)
    client.post("/accounts/albums/sunset/pause/")
    client.post("/accounts/albums/sunset/resume/")
    album.refresh_from_db()
    assert album.is_active and album.next_fetch_at == later  # not due at once: back-off and schedule hold
    rows = list(ModerationAction.objects.order_by("id").values_list("user__email", "action", "hashtag"))
    assert rows == [(owner.email, "pause", "sunset"), (owner.email, "resume", "sunset")]


def test_pausing_through_the_api_is_the_same_audited_rule(owner, album):
    client = Client()
    client.force_login(owner)
    response = client.patch("/api/v1/albums/sunset/", {"fetching_active": False}, content_type="application/json")
    assert response.status_code == 200 and response.json()["fetching_active"] is False
    album.refresh_from_db()
    assert not album.is_active
    assert list(ModerationAction.objects.values_list("action", flat=True)) == ["pause"]
