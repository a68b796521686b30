"""API inputs at the edges: a 400 saying what is wrong, never a 500; only what the schema allows."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client

from everhash.testing.builders import make_album, make_picture
from users.models import ApiToken

EDGES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.fixture
def album(owner):
    album = make_album(owner=owner, hashtag="sunset")
    make_picture(album=album)
    return album


@pytest.mark.parametrize("name", ["added_before", "added_after", "posted_before", "posted_after"])
@pytest.mark.parametrize("value", EDGES)
def test_a_datetime_without_a_utc_form_is_a_400(client, album, name, value):
    response = client.get("/api/v1/albums/sunset/pictures/", {name: value})
    assert response.status_code == 400
    assert response.json() == {name: ["This date and time is out of range."]}


@pytest.mark.parametrize("name", ["added_before", "posted_after"])
def test_an_empty_datetime_is_a_400_not_an_ignored_filter(client, album, name):
    response = client.get(f"/api/v1/albums/sunset/pictures/?{name}=")
    assert response.status_code == 400
    assert name in response.json()


def cursor(ordering: str, position: list) -> str:
    raw = json.dumps({"o": ordering, "p": position, "r": 0, "i": 0}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("value", EDGES)
def test_a_cursor_at_the_edge_of_time_is_a_400(client, album, value):
    response = client.get("/api/v1/albums/sunset/pictures/", {"cursor": cursor("newest", [value, 1])})
    assert response.status_code == 400
    assert "cursor" in response.json()


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("offset=10000000000000000000000", "offset"),
        ("limit=0", "limit"),
        ("limit=-5", "limit"),
    ],
)
def test_offset_and_limit_out_of_bounds_are_a_400(client, album, query, parameter):
    response = client.get(f"/api/v1/albums/?{query}")
    assert response.status_code == 400
    assert parameter in response.json()


def test_more_than_the_largest_page_gives_the_largest_page(client, album):
    assert client.get("/api/v1/albums/?limit=5000").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"fetching_active": 0},
        {"fetching_active": "false"},
        {"description": 0},
        {"title": ["a"]},
    ],
)
def test_json_fields_take_their_documented_type_only(album, owner, body):
    key = ApiToken.objects.issue(user=owner, name="t")[1]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.patch("/api/v1/albums/sunset/", body, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()) == set(body)


def test_the_api_takes_json_bodies_only(album, owner):
    key = ApiToken.objects.issue(user=owner, name="t")[1]
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post("/api/v1/albums/", {"hashtag": "newone"})
    assert response.status_code == 415


def test_the_schema_states_the_bounds_it_enforces(client, db):
    schema = client.get("/api/v1/schema/?format=json").json()

    def parameter(path: str, name: str) -> dict:
        [found] = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name]
        return found["schema"]

    assert parameter("/api/v1/albums/", "offset")["minimum"] == 0
    assert parameter("/api/v1/albums/", "limit")["minimum"] == 1
    assert parameter("/api/v1/albums/{hashtag}/popular/", "limit") == {"type": "integer", "minimum": 1, "maximum": 50}
    assert parameter("/api/v1/albums/{hashtag}/fetch-status/", "runs")["maximum"] == 100
    hashtag = schema["components"]["schemas"]["AlbumCreate"]["properties"]["hashtag"]
    assert hashtag["minLength"] == 1
