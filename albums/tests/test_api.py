"""The albums API: /api/v1/albums/ and /api/v1/albums/<hashtag>/, plus what every endpoint shares."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from albums.models import Album, Milestone
from collages.models import Collage
from everhash.testing.builders import add_pictures, make_album, make_picture
from everhash.testing.fixtures import ROLES
from pictures.models import Picture

# --- The permission matrix ----------------------------------------------------------------------

# (method, path, body, expected status for anonymous, stranger, owner, staff)
MATRIX = [
    ("get", "/api/v1/albums/", None, (200, 200, 200, 200)),
    ("post", "/api/v1/albums/", {"hashtag": "#BrandNew"}, (401, 201, 201, 201)),
    ("get", "/api/v1/albums/sunset/", None, (200, 200, 200, 200)),
    ("patch", "/api/v1/albums/sunset/", {"title": "Changed"}, (401, 403, 200, 200)),
    ("put", "/api/v1/albums/sunset/", {"title": "Changed"}, (401, 405, 405, 405)),
    ("delete", "/api/v1/albums/sunset/", None, (401, 403, 204, 204)),
    ("post", "/api/v1/albums/sunset/", {"title": "Changed"}, (401, 405, 405, 405)),
    ("get", "/api/v1/albums/hush/", None, (404, 404, 200, 200)),
    ("get", "/api/v1/albums/hush/?key={key}", None, (200, 200, 200, 200)),
    ("patch", "/api/v1/albums/hush/", {"title": "Changed"}, (401, 404, 200, 200)),
    ("patch", "/api/v1/albums/hush/?key={key}", {"title": "Changed"}, (401, 403, 200, 200)),
    ("delete", "/api/v1/albums/hush/", None, (401, 404, 204, 204)),
    ("delete", "/api/v1/albums/hush/?key={key}", None, (401, 403, 204, 204)),
]


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "expected"),
    [
        pytest.param(role, method, path, body, statuses[i], id=f"{method.upper()} {path} as {role}")
        for method, path, body, statuses in MATRIX
        for i, role in enumerate(ROLES)
    ],
)
def test_each_method_answers_each_kind_of_caller_as_the_matrix_says(
    call, album, hush, role, method, path, body, expected
):
    response = call(role, method, path.format(key=hush.secret), body)
    assert response.status_code == expected, response.content
    assert response.status_code == 204 or response["Content-Type"].startswith("application/json")
    if method != "get" and expected >= 400:
        # A refused write changes nothing.
        assert Album.objects.filter(hashtag="sunset", title="Sunsets").exists()
        assert Album.objects.filter(hashtag="hush", title="Quiet").exists()
        assert not Album.objects.filter(hashtag="brandnew").exists()


# --- Listing --------------------------------------------------------------------------------------


def test_the_list_shows_public_albums_and_the_callers_own_unlisted_ones(call, owner, other):
    make_album(owner=owner, hashtag="sunset")
    make_album(owner=owner, hashtag="hush", visibility=Album.Visibility.UNLISTED)
    make_album(owner=other, hashtag="otters")
    make_album(owner=other, hashtag="othersecret", visibility=Album.Visibility.UNLISTED)

    def hashtags(role):
        return [album["hashtag"] for album in call(role, "get", "/api/v1/albums/").json()["results"]]

    assert hashtags("anonymous") == ["otters", "sunset"]
    assert hashtags("owner") == ["hush", "otters", "sunset"]
    assert hashtags("stranger") == ["othersecret", "otters", "sunset"]


@pytest.mark.parametrize("role", ["anonymous", "staff"])
def test_unlisted_albums_of_others_are_never_listed_not_even_with_their_key(call, hush, role):
    body = call(role, "get", f"/api/v1/albums/?key={hush.secret}").json()
    assert body["results"] == []


def test_mine_lists_only_the_callers_albums(call, owner, other):
    make_album(owner=owner, hashtag="sunset")
    make_album(owner=other, hashtag="otters")
    body = call("owner", "get", "/api/v1/albums/?mine=true").json()
    assert [album["hashtag"] for album in body["results"]] == ["sunset"]


def test_mine_asks_an_anonymous_caller_to_sign_in(call, db):
    response = call("anonymous", "get", "/api/v1/albums/?mine=true")
    assert response.status_code == 401
    assert "Sign in" in response.json()["detail"]


def test_a_bad_mine_value_is_a_400_naming_the_parameter(call, db):
    response = call("anonymous", "get", "/api/v1/albums/?mine=perhaps")
    assert response.status_code == 400
    assert "mine" in response.json()


def test_the_list_never_returns_more_than_100_albums_a_page(call, owner):
    Album.objects.bulk_create([Album(owner=owner, hashtag=f"tag{n}", secret=f"s{n}") for n in range(105)])
    body = call("anonymous", "get", "/api/v1/albums/?limit=1000").json()
    assert body["count"] == 105
    assert len(body["results"]) == 100
    assert "offset=100" in body["next"]


def test_the_list_takes_the_same_number_of_queries_for_few_and_many_albums_and_pictures(call, owner):
    make_album(owner=owner, hashtag="first")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert call("anonymous", "get", "/api/v1/albums/").status_code == 200
        return len(captured)

    few = queries()
    for n in range(5):
        album = make_album(owner=owner, hashtag=f"more{n}")
        Milestone.objects.create(album=album, threshold=100, count=100)
        Collage.objects.create(album=album, image_key=f"c/{n}.jpg", square_key=f"c/{n}s.jpg", fingerprint="x")
        add_pictures(album, 200)
    cache.clear()
    assert queries() == few <= 3


# --- One album ------------------------------------------------------------------------------------


def test_an_album_carries_its_counts_cover_milestones_and_fetch_times(call, album, owner):
    make_picture(album=album, author_handle="ann")
    make_picture(album=album, author_handle="ann")
    make_picture(album=album, author_handle="bob")
    make_picture(album=album, author_handle="cid", status=Picture.Status.HIDDEN)
    make_picture(album=album, author_handle="dee", status=Picture.Status.PENDING)
    Milestone.objects.create(album=album, threshold=200, count=201)
    Milestone.objects.create(album=album, threshold=100, count=100)
    Collage.objects.create(album=album, image_key="collages/s.jpg", square_key="collages/s-sq.jpg", fingerprint="f")
    data = call("anonymous", "get", "/api/v1/albums/sunset/").json()
    assert data["picture_count"] == 3
    assert data["author_count"] == 2
    assert data["milestones"] == [100, 200]
    assert data["cover_url"] == "http://testserver/media/collages/s.jpg"
    assert data["cover_square_url"] == "http://testserver/media/collages/s-sq.jpg"
    assert data["pictures_url"] == "http://testserver/api/v1/albums/sunset/pictures/"
    assert data["page_url"] == "http://testserver/album/sunset/"
    assert data["next_fetch_at"] is None
    assert data["can_edit"] is False
    assert "secret" not in data and album.secret not in str(data)
    assert "owner" not in data and owner.email not in str(data)


def test_an_album_without_a_collage_has_no_cover(call, album):
    data = call("anonymous", "get", "/api/v1/albums/sunset/").json()
    assert data["cover_url"] is None and data["cover_square_url"] is None


def test_the_next_fetch_is_shown_only_while_fetching_is_active(call, album):
    album.next_fetch_at = album.created
    album.save()
    assert call("anonymous", "get", "/api/v1/albums/sunset/").json()["next_fetch_at"] is not None
    Album.objects.filter(pk=album.pk).update(is_active=False)
    assert call("anonymous", "get", "/api/v1/albums/sunset/").json()["next_fetch_at"] is None


def test_the_owner_and_staff_see_that_they_can_edit(call, album):
    assert call("owner", "get", "/api/v1/albums/sunset/").json()["can_edit"] is True


@pytest.mark.parametrize("spelling", ["Sunset", "SUNSET", "%23Sunset", "%EF%BC%B3unset"])
def test_an_album_answers_to_any_spelling_of_its_hashtag(call, album, spelling):
    response = call("anonymous", "get", f"/api/v1/albums/{spelling}/")
    assert response.status_code == 200
    assert response.json()["hashtag"] == "sunset"
    assert response.json()["url"] == "http://testserver/api/v1/albums/sunset/"


def test_a_bad_hashtag_is_a_404_saying_why(call, db):
    response = call("anonymous", "get", "/api/v1/albums/sun%20set/")
    assert response.status_code == 404
    assert response.json()["detail"] == "This is not a hashtag: A hashtag is one word: it cannot contain spaces."


def test_an_unknown_hashtag_is_a_json_404(call, db):
    response = call("anonymous", "get", "/api/v1/albums/nosuchtag/")
    assert response.status_code == 404
    assert response.json()["detail"] == "No album for this hashtag, or not one you may see."


def test_links_of_an_unlisted_album_keep_the_key_the_caller_came_with(call, hush):
    data = call("anonymous", "get", f"/api/v1/albums/hush/?key={hush.secret}").json()
    assert data["pictures_url"] == f"http://testserver/api/v1/albums/hush/pictures/?key={hush.secret}"
    assert call("owner", "get", "/api/v1/albums/hush/").json()["pictures_url"].endswith("/pictures/")


def test_a_wrong_key_opens_nothing(call, hush):
    assert call("anonymous", "get", "/api/v1/albums/hush/?key=wrong").status_code == 404
    assert call("anonymous", "get", "/api/v1/albums/hush/?key=").status_code == 404


# --- Creating -------------------------------------------------------------------------------------


def test_creating_an_album_normalises_the_hashtag_and_makes_the_caller_its_owner(call, other):
    response = call("stranger", "post", "/api/v1/albums/", {"hashtag": " #NightSky ", "title": "Stars"})
    assert response.status_code == 201
    assert response["Location"] == "http://testserver/api/v1/albums/nightsky/"
    assert response.json()["hashtag"] == "nightsky"
    assert response.json()["can_edit"] is True
    album = Album.objects.get(hashtag="nightsky")
    assert album.owner == other
    assert album.title == "Stars"
    assert album.next_fetch_at is None  # due at the next fetch_tweets run
    assert album.is_active


def test_an_album_cannot_be_created_for_someone_else(call, owner, other):
    call("stranger", "post", "/api/v1/albums/", {"hashtag": "mine", "owner": owner.pk})
    assert Album.objects.get(hashtag="mine").owner == other


def test_creating_an_existing_album_is_a_409_saying_where_it_is(call, album):
    response = call("stranger", "post", "/api/v1/albums/", {"hashtag": "#SUNSET"})
    assert response.status_code == 409
    assert response.json() == {
        "detail": "There is already an album for #sunset: its URL is in album.",
        "album": "http://testserver/api/v1/albums/sunset/",
    }


def test_creating_your_own_album_again_says_you_have_it(call, album):
    response = call("owner", "post", "/api/v1/albums/", {"hashtag": "sunset"})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("You already have an album for #sunset")


def test_creating_someone_elses_unlisted_album_does_not_reveal_where_it_is(call, hush):
    response = call("stranger", "post", "/api/v1/albums/", {"hashtag": "hush"})
    assert response.status_code == 409
    assert response.json()["album"] is None
    assert hush.secret not in response.content.decode()


@pytest.mark.parametrize(
    ("hashtag", "message"),
    [
        ("", "This field may not be blank."),
        ("two words", "A hashtag is one word: it cannot contain spaces."),
        ("sun-set", "A hashtag can only contain letters, digits and underscores (not -)."),
        ("2024", "A hashtag needs at least one letter (X does not link #123)."),
    ],
)
def test_a_bad_hashtag_cannot_be_created_and_the_400_says_why(call, db, hashtag, message):
    response = call("stranger", "post", "/api/v1/albums/", {"hashtag": hashtag})
    assert response.status_code == 400
    assert response.json() == {"hashtag": [message]}


# --- Changing and deleting ------------------------------------------------------------------------


def test_the_owner_changes_title_description_visibility_and_fetching(call, album):
    body = {"title": "Dusk", "description": "Evenings.", "visibility": "unlisted", "fetching_active": False}
    response = call("owner", "patch", "/api/v1/albums/sunset/", body)
    assert response.status_code == 200
    album.refresh_from_db()
    assert (album.title, album.description, album.visibility, album.is_active) == (
        "Dusk",
        "Evenings.",
        "unlisted",
        False,
    )
    assert response.json()["fetching_active"] is False


def test_the_hashtag_and_owner_of_an_album_cannot_be_changed(call, album, owner, other):
    call("owner", "patch", "/api/v1/albums/sunset/", {"hashtag": "other", "owner": other.pk, "title": "T"})
    album.refresh_from_db()
    assert (album.hashtag, album.owner, album.title) == ("sunset", owner, "T")


def test_a_bad_visibility_is_a_400_naming_the_field(call, album):
    response = call("owner", "patch", "/api/v1/albums/sunset/", {"visibility": "secret"})
    assert response.status_code == 400
    assert "visibility" in response.json()


def test_deleting_an_album_removes_its_pictures_and_files(call, album, settings):
    picture = make_picture(album=album, original_key="originals/aa/one.jpg")
    path = settings.MEDIA_ROOT / "originals/aa/one.jpg"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"jpeg")
    assert call("owner", "delete", "/api/v1/albums/sunset/").status_code == 204
    assert not Album.objects.filter(pk=album.pk).exists()
    assert not Picture.objects.filter(pk=picture.pk).exists()
    assert not path.exists()


def test_staff_delete_anyones_album(call, album):
    assert call("staff", "delete", "/api/v1/albums/Sunset/").status_code == 204
    assert not Album.objects.exists()


# --- Shared behaviour -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/albums/", "/api/v1/albums/sunset/"])
def test_album_responses_carry_an_etag_and_answer_304_when_unchanged(client, album, path):
    first = client.get(path)
    etag = first["ETag"]
    again = client.get(path, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    Album.objects.filter(pk=album.pk).update(title="Renamed")
    changed = client.get(path, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag


def test_responses_vary_on_who_is_asking(client, album):
    vary = client.get("/api/v1/albums/")["Vary"]
    assert "Authorization" in vary and "Cookie" in vary


def test_anonymous_callers_are_throttled_with_429_and_retry_after(client, album, settings, still_clock):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "2/min", "user": "5/min"}}
    assert client.get("/api/v1/albums/").status_code == 200
    assert client.get("/api/v1/albums/sunset/").status_code == 200
    response = client.get("/api/v1/albums/")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert "throttled" in response.json()["detail"]


def test_signed_in_callers_have_their_own_higher_rate(client, album, owner, settings, still_clock):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "1/min", "user": "3/min"}}
    client.force_login(owner)
    assert [client.get("/api/v1/albums/").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_a_session_write_without_the_csrf_token_is_refused(owner, album):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.patch("/api/v1/albums/sunset/", {"title": "Sneaky"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    album.refresh_from_db()
    assert album.title == "Sunsets"


def test_an_unknown_api_path_is_a_json_404(client, db):
    response = client.get("/api/v1/nothing/here/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found: no such endpoint (see /api/v1/docs/)."}


def test_the_browsable_api_escapes_titles_and_descriptions(client, owner):
    make_album(owner=owner, hashtag="xss", title="<script>alert(1)</script>", description="<img src=x onerror=1>")
    body = client.get("/api/v1/albums/xss/", HTTP_ACCEPT="text/html").content.decode()
    assert "<script>alert(1)" not in body
    assert "<img src=x" not in body
    assert "&lt;script&gt;alert(1)" in body


def test_the_ping_endpoint_answers_ok(client, db):
    response = client.get("/api/v1/ping/")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


@pytest.mark.parametrize("rate", ["lots", "120", "120/fortnight", "0/min", "²/min"])
def test_a_malformed_rate_stops_the_process_at_start_up(rate):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "everhash.settings", "EVERHASH_API_ANON_RATE": rate}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "EVERHASH_API_ANON_RATE must look like 120/min" in result.stderr
