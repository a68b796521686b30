"""The OpenAPI document, its docs page, and schemathesis fuzzing of every operation it describes.

Schemathesis loads /api/v1/schema/ from the app in-process (WSGI, no server) and sends generated
requests to every operation, anonymous and with an API token: no response may be a 5xx, and
every response must match what the schema says about its status code.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS as REGISTRY
from schemathesis.checks import load_all_checks

from albums.models import Album, Milestone
from collages.models import Collage
from everhash.testing.builders import add_pictures, make_album
from tweets.models import FetchRun
from users.models import ApiToken

# Every check schemathesis has: no 5xx, answers as documented (status, content type, headers,
# body), invalid input refused and valid input accepted, unsupported methods, auth ignored or not.
load_all_checks()
CHECKS = REGISTRY.get_all()


def test_the_schema_is_valid_openapi_3(db):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/albums/", "/api/v1/albums/{hashtag}/pictures/", "/api/v1/pictures/{id}/"} <= set(schema["paths"])
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_the_schema_is_served_as_json_and_yaml(client, db):
    assert client.get("/api/v1/schema/?format=json").json()["info"]["title"] == "everhash API"
    assert client.get("/api/v1/schema/").content.startswith(b"openapi: 3.")


def test_the_docs_page_loads_nothing_from_another_site(client, db):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "swagger-ui" in body
    external = re.findall(r"""(?:src|href)=["']?((?:https?:)?//[^"' >]+)""", body)
    assert external == []
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in body
    # The page's own script is a separate response (no inline script under the CSP).
    script = re.search(r'<script src="([^"]*script=[^"]*)"', body).group(1).replace("&amp;", "&")
    assert "/api/v1/schema/" in client.get(script).content.decode()


# --- Fuzzing --------------------------------------------------------------------------------------


# Loaded when the module is collected: the schema view needs no database. (schemathesis'
# from_fixture loader does not work with pytest 9.2, which changed how test ids are stored.)
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", WSGIHandler())
FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@schema.hook("map_query")
def no_invented_cursors(context, query):
    """A cursor is opaque: only the `next`/`previous` links give valid ones, so any string the schema
    allows is not "valid data" the API must accept. pictures/tests/test_api.py covers cursors that
    are garbage, forged or tampered with; the fuzzing sends none of its own."""
    if query:
        query.pop("cursor", None)
    return query


@pytest.fixture
def data_worth_finding(db, owner, other, settings):
    """Albums, pictures, runs and a collage to find; one WSGI request at a time in the test's transaction."""
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    # Fuzzing sends hundreds of requests from one address: no throttling here (it has its own tests).
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "100000/min", "user": "100000/min"},
    }
    cache.clear()
    demo = make_album(owner=owner, hashtag="everhashdemo", title="Demo")
    hush = make_album(owner=owner, hashtag="hush", visibility=Album.Visibility.UNLISTED)
    make_album(owner=other, hashtag="otters")
    add_pictures(demo, 30)
    add_pictures(hush, 3)
    Milestone.objects.create(album=demo, threshold=100, count=100)
    Collage.objects.create(album=demo, image_key="collages/d.jpg", square_key="collages/d-sq.jpg", fingerprint="f")
    FetchRun.objects.create(album=demo, error="X API answered 503", rejections=[{"reason": "not an image"}])
    # Django's handler closes the connection after each request, which would end the test's
    # transaction; the test client does the same as this while it handles a request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token_header(owner) -> dict[str, str]:
    return {"Authorization": f"Bearer {ApiToken.objects.issue(user=owner, name='fuzzing')[1]}"}


@schema.parametrize()
@FUZZ
def test_no_anonymous_request_gets_a_server_error_or_an_off_schema_answer(case, data_worth_finding):
    case.call_and_validate(checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_no_token_request_gets_a_server_error_or_an_off_schema_answer(case, data_worth_finding, token_header):
    case.call_and_validate(headers=token_header, checks=CHECKS)
