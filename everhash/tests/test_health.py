"""GET /healthz: the database, the media storage and the age of the last successful fetch."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from everhash.testing.builders import make_album


@pytest.fixture
def client(client, staff):
    """Staff see every check's details; the public answer is tested below."""
    client.force_login(staff)
    return client


def health(client):
    response = client.get("/healthz")
    assert response["Cache-Control"].startswith("max-age=0")
    return response.status_code, response.json()


def test_a_new_site_without_albums_is_healthy(client, db):
    status, report = health(client)
    assert status == 200
    assert report["status"] == "ok"
    assert report["checks"]["database"]["ok"]
    assert report["checks"]["storage"]["ok"]
    assert report["checks"]["fetch"] == {
        "ok": True,
        "max_age_seconds": 3600,
        "failing_albums": 0,
        "paused_sources": [],
        "last_success": None,
        "note": "no active album",
        "ms": report["checks"]["fetch"]["ms"],
    }


def test_a_recent_successful_fetch_is_healthy(client, owner):
    make_album(owner=owner, hashtag="sunset", last_success_at=timezone.now() - timedelta(minutes=25))
    status, report = health(client)
    assert status == 200
    assert 1490 <= report["checks"]["fetch"]["age_seconds"] <= 1510


def test_no_successful_fetch_for_too_long_answers_503(client, owner, settings):
    settings.EVERHASH_HEALTHZ_MAX_FETCH_AGE_MINUTES = 60
    last = timezone.now() - timedelta(minutes=61)
    make_album(owner=owner, hashtag="sunset", last_success_at=last, failures=3)
    make_album(owner=owner, hashtag="beach", last_success_at=last - timedelta(hours=5))
    status, report = health(client)
    assert status == 503
    assert report["status"] == "failing"
    fetch = report["checks"]["fetch"]
    assert fetch["ok"] is False
    assert fetch["last_success"] == last.isoformat()
    assert fetch["failing_albums"] == 1
    assert "no successful fetch for 36" in fetch["error"]
    assert report["checks"]["database"]["ok"] and report["checks"]["storage"]["ok"]


def test_paused_albums_do_not_make_the_site_stale(client, owner):
    make_album(owner=owner, hashtag="old", is_active=False, last_success_at=timezone.now() - timedelta(days=30))
    status, _ = health(client)
    assert status == 200


def test_a_new_album_gets_the_allowed_age_for_its_first_fetch(client, owner):
    album = make_album(owner=owner, hashtag="fresh")
    assert health(client)[0] == 200
    with time_machine.travel(album.created + timedelta(minutes=61)):
        status, report = health(client)
    assert status == 503
    assert report["checks"]["fetch"]["last_success"] is None


@pytest.fixture
def unreachable_storage(settings):
    # A real S3 client against a closed loopback port: the connection is refused.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "everhash",
                "endpoint_url": "http://127.0.0.1:9",
                "access_key": "test",
                "secret_key": "test",
                "region_name": "us-east-1",
            },
        },
    }


def test_an_unreachable_storage_answers_503(client, unreachable_storage):
    status, report = health(client)
    assert status == 503
    storage = report["checks"]["storage"]
    assert storage["ok"] is False
    assert storage["error"].startswith("StorageUnavailable:")
    assert "EndpointConnectionError" in storage["error"]
    assert report["checks"]["database"]["ok"]


def test_only_get_and_head(client, db):
    assert client.post("/healthz").status_code == 405
    assert client.head("/healthz").status_code == 200


def test_the_public_answer_carries_status_words_only_and_the_log_the_details(db, unreachable_storage, caplog):
    caplog.set_level(logging.WARNING, logger="everhash.health")
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "failing",
        "checks": {"database": "ok", "storage": "failing", "fetch": "ok", "web": "ok"},
    }
    [record] = [r for r in caplog.records if r.name == "everhash.health"]
    assert "EndpointConnectionError" in record.getMessage()
    assert "127.0.0.1:9" in record.getMessage()


def test_the_health_instance_reports_a_stopped_page_server(client, db, settings):
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        settings.EVERHASH_HEALTHZ_WEB_ADDRESS = f"127.0.0.1:{listening.getsockname()[1]}"
        status, report = health(client)
        assert status == 200
        assert report["checks"]["web"]["address"] == settings.EVERHASH_HEALTHZ_WEB_ADDRESS
    status, report = health(client)  # nothing listens there any more
    assert status == 503
    assert report["checks"]["web"]["ok"] is False
    assert "ConnectionRefusedError" in report["checks"]["web"]["error"]
