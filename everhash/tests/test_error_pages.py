"""Error pages with DEBUG off: a clear page, never the exception's text (routes, paths, data)."""

from __future__ import annotations

import pytest
from django.test import Client

from everhash.testing.builders import make_album

SECRET = "/srv/everhash/app/albums/secret_module.py"


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["testserver"]


def assert_no_internals(body: str) -> None:
    for leak in ("URLconf", "everhash.urls", "album/<str:hashtag>", "admin/", "Traceback", SECRET, "Only the album's"):
        assert leak not in body, leak


def test_the_404_page_shows_no_routes(client, db, production):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "This page does not exist" in body
    assert_no_internals(body)


def test_an_unknown_album_still_offers_to_create_it(client, db, production):
    response = client.get("/album/nosuchtag/")
    assert response.status_code == 404
    assert "Create the album #nosuchtag" in response.content.decode()


def test_the_400_page_shows_nothing_of_the_request(client, db, production):
    response = client.get("/", HTTP_HOST="evil.example.com")
    assert response.status_code == 400
    body = response.content.decode()
    assert "Bad request" in body
    assert "evil.example.com" not in body
    assert "ALLOWED_HOSTS" not in body


def test_the_403_page_shows_not_the_exceptions_text(client, owner, other, production):
    make_album(owner=owner, hashtag="sunset")
    client.force_login(other)
    response = client.get("/album/sunset/download.zip")
    assert response.status_code == 403
    body = response.content.decode()
    assert "Not allowed" in body
    assert_no_internals(body)


def test_the_csrf_failure_page_shows_no_reason(db, production):
    response = Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "a@example.com"})
    assert response.status_code == 403
    body = response.content.decode()
    assert "This form has expired" in body
    assert "CSRF cookie not set" not in body


def test_the_500_page_shows_not_the_exceptions_text(db, production, monkeypatch):
    import albums.views

    def broken(*args, **kwargs):
        raise RuntimeError(f"could not open {SECRET}")

    monkeypatch.setattr(albums.views, "render", broken)
    response = Client(raise_request_exception=False).get("/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body
    assert_no_internals(body)
