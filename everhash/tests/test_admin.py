from __future__ import annotations

import pytest

from everhash.testing.builders import make_picture
from tweets.models import AlbumSource, FetchRun

ADMIN_PAGES = [
    "/admin/",
    "/admin/users/user/",
    "/admin/albums/album/",
    "/admin/albums/milestone/",
    "/admin/pictures/picture/",
    "/admin/collages/collage/",
    "/admin/tweets/fetchrun/",
    "/admin/tweets/albumsource/",
]


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_admin_pages_load_for_staff(client, staff, album, url):
    make_picture(album=album, author_name="<img src=x onerror=alert(1)>")
    FetchRun.objects.create(album=album, error="boom")
    AlbumSource.objects.create(album=album, key="mastodon:mastodon.example", last_error="<img src=x onerror=alert(1)>")
    client.force_login(staff)
    response = client.get(url)
    assert response.status_code == 200
    assert b"<img src=x onerror" not in response.content


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_admin_pages_redirect_everyone_else_to_the_login(client, other, url):
    assert client.get(url).status_code == 302
    client.force_login(other)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_can_open_an_album_and_a_picture(client, staff, album):
    picture = make_picture(album=album)
    client.force_login(staff)
    assert client.get(f"/admin/albums/album/{album.pk}/change/").status_code == 200
    assert client.get(f"/admin/pictures/picture/{picture.pk}/change/").status_code == 200
