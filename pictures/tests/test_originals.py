"""Originals have no public address: an access-checked view, a signed URL on S3; deleted pictures
take their renditions with them."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from django.core.files.storage import default_storage
from django.test import Client

from albums.models import Album
from everhash.testing.builders import make_album, make_stored_picture
from pictures import moderation
from pictures.models import Picture


def original(client: Client, picture: Picture, key: str | None = None):
    return client.get(f"/picture/{picture.pk}/original", {"key": key} if key else {})


@pytest.fixture
def public_picture(owner):
    return make_stored_picture(make_album(owner=owner, hashtag="sunset"), "coffee.png")


def test_a_visible_original_is_served_with_a_short_private_cache(client, public_picture):
    response = original(client, public_picture)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response.content == default_storage.open(public_picture.original_key).read()
    assert response["Cache-Control"] == "private, max-age=300"


def test_a_hidden_original_is_only_for_the_owner_and_staff(client, owner, other, staff, public_picture):
    moderation.hide(pictures=Picture.objects.filter(pk=public_picture.pk), by=owner)
    assert original(client, public_picture).status_code == 404
    client.force_login(other)
    assert original(client, public_picture).status_code == 404
    for manager in (owner, staff):
        client.force_login(manager)
        assert original(client, public_picture).status_code == 200


def test_an_unlisted_albums_original_needs_its_key(client, owner):
    album = make_album(owner=owner, hashtag="hush", visibility=Album.Visibility.UNLISTED)
    picture = make_stored_picture(album, "rocket.jpg")
    assert original(client, picture).status_code == 404
    assert original(client, picture, key="wrong").status_code == 404
    assert original(client, picture, key=album.secret).status_code == 200


def test_the_api_gives_the_access_checked_address_of_an_original(client, owner):
    album = make_album(owner=owner, hashtag="hush", visibility=Album.Visibility.UNLISTED)
    picture = make_stored_picture(album, "rocket.jpg")
    data = client.get(f"/api/v1/albums/hush/pictures/?key={album.secret}").json()["results"][0]
    assert data["original"]["url"] == f"http://testserver/picture/{picture.pk}/original?key={album.secret}"
    assert "originals/" not in str(data)
    assert client.get(data["original"]["url"].removeprefix("http://testserver")).status_code == 200


def test_deleting_a_picture_removes_its_original_and_renditions(owner, public_picture):
    keys = [public_picture.original_key, *(r["key"] for r in public_picture.renditions.values())]
    assert all(default_storage.exists(key) for key in keys)
    moderation.delete(pictures=Picture.objects.filter(pk=public_picture.pk), by=owner)
    assert not any(default_storage.exists(key) for key in keys)


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  (loopback moto)
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_on_s3_an_original_is_private_and_reached_through_a_short_signed_url(client, owner, s3):
    picture = make_stored_picture(make_album(owner=owner, hashtag="sunset"), "coffee.png")
    response = original(client, picture)
    assert response.status_code == 302
    signed = response["Location"]
    assert signed.startswith(s3.endpoint_url) and "X-Amz-Expires=300" in signed
    status, body = fetch(signed)
    assert status == 200 and body[:2] == b"\xff\xd8"
    unsigned = f"{s3.endpoint_url}/{s3.bucket}/{picture.original_key}"
    assert fetch(unsigned)[0] == 403
    moderation.hide(pictures=Picture.objects.filter(pk=picture.pk), by=owner)
    assert original(Client(), picture).status_code == 404
