"""The fetch status API: /api/v1/albums/<hashtag>/fetch-status/, for owners and staff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from albums.models import Album
from everhash.testing.fixtures import ROLES
from tweets.models import FetchRun

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def add_runs(album: Album, count: int) -> list[FetchRun]:
    return FetchRun.objects.bulk_create(
        FetchRun(
            album=album,
            started=START + timedelta(minutes=20 * n),
            finished=START + timedelta(minutes=20 * n, seconds=30),
            requests_made=2,
            posts_seen=10 + n,
            pictures_added=n,
        )
        for n in range(count)
    )


MATRIX = [
    ("get", "/api/v1/albums/sunset/fetch-status/", (401, 403, 200, 200)),
    ("get", "/api/v1/albums/hush/fetch-status/", (401, 404, 200, 200)),
    ("get", "/api/v1/albums/hush/fetch-status/?key={key}", (401, 403, 200, 200)),
    ("post", "/api/v1/albums/sunset/fetch-status/", (401, 405, 405, 405)),
    ("put", "/api/v1/albums/sunset/fetch-status/", (401, 405, 405, 405)),
    ("patch", "/api/v1/albums/sunset/fetch-status/", (401, 405, 405, 405)),
    ("delete", "/api/v1/albums/sunset/fetch-status/", (401, 405, 405, 405)),
]


@pytest.mark.parametrize(
    ("role", "method", "path", "expected"),
    [
        pytest.param(role, method, path, statuses[i], id=f"{method.upper()} {path} as {role}")
        for method, path, statuses in MATRIX
        for i, role in enumerate(ROLES)
    ],
)
def test_each_method_answers_each_kind_of_caller_as_the_matrix_says(call, album, hush, role, method, path, expected):
    add_runs(album, 1)
    add_runs(hush, 1)
    response = call(role, method, path.format(key=hush.secret))
    assert response.status_code == expected, response.content
    assert response["Content-Type"] == "application/json"
    assert FetchRun.objects.count() == 2


def test_the_owner_sees_the_recent_runs_newest_first_with_counts_and_errors(call, album):
    add_runs(album, 3)
    FetchRun.objects.create(
        album=album,
        started=START + timedelta(hours=5),
        error="X API answered 503",
        rejected=1,
        rejections=[{"media_key": "3_1", "reason": "not an image"}],
    )
    Album.objects.filter(pk=album.pk).update(
        failures=1, last_error="X API answered 503", last_fetch_at=START + timedelta(hours=5)
    )
    data = call("owner", "get", "/api/v1/albums/sunset/fetch-status/").json()
    assert data["hashtag"] == "sunset"
    assert data["fetching_active"] is True
    assert data["failures"] == 1
    assert data["last_error"] == "X API answered 503"
    assert data["last_fetch_at"] == "2026-11-20T13:00:00Z"
    runs = data["runs"]
    assert [run["started"] for run in runs] == [
        "2026-11-20T13:00:00Z",
        "2026-11-20T08:40:00Z",
        "2026-11-20T08:20:00Z",
        "2026-11-20T08:00:00Z",
    ]
    assert runs[0]["ok"] is False
    assert runs[0]["error"] == "X API answered 503"
    assert runs[0]["rejections"] == [{"media_key": "3_1", "reason": "not an image"}]
    assert runs[1]["ok"] is True
    assert (runs[1]["posts_seen"], runs[1]["pictures_added"], runs[1]["requests_made"]) == (12, 2, 2)


def test_an_unfinished_run_is_not_ok(call, album):
    FetchRun.objects.create(album=album, started=START)
    run = call("owner", "get", "/api/v1/albums/sunset/fetch-status/").json()["runs"][0]
    assert run["finished"] is None
    assert run["ok"] is False


def test_20_runs_are_shown_by_default_and_up_to_100_on_request(call, album):
    add_runs(album, 120)
    assert len(call("owner", "get", "/api/v1/albums/sunset/fetch-status/").json()["runs"]) == 20
    assert len(call("owner", "get", "/api/v1/albums/sunset/fetch-status/?runs=100").json()["runs"]) == 100


@pytest.mark.parametrize("runs", ["0", "101", "all"])
def test_a_bad_runs_value_is_a_400_naming_it(call, album, runs):
    response = call("owner", "get", f"/api/v1/albums/sunset/fetch-status/?runs={runs}")
    assert response.status_code == 400
    assert "runs" in response.json()


def test_the_fetch_status_takes_the_same_queries_for_few_and_many_runs(client, owner, album):
    client.force_login(owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/albums/sunset/fetch-status/").status_code == 200
        return len(captured)

    add_runs(album, 2)
    few = queries()
    add_runs(album, 200)
    assert queries() == few


def test_a_stranger_is_told_only_the_owner_may_see_it(call, album):
    response = call("stranger", "get", "/api/v1/albums/sunset/fetch-status/")
    assert response.json() == {"detail": "Only the album's owner (or staff) can see its fetch status."}
