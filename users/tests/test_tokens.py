"""Personal API tokens: the /accounts/tokens/ page and `Authorization: Bearer <token>` on the API."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client

from albums.models import Album
from users.models import ApiToken
from users.views import MAX_TOKENS_PER_USER

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()


@pytest.fixture
def token(owner) -> str:
    return ApiToken.objects.issue(user=owner, name="script")[1]


def create_on_page(client: Client, name: str = "export script") -> str:
    """Create a token through the page; the token as the page shows it."""
    response = client.post("/accounts/tokens/", {"name": name})
    assert response.status_code == 200
    match = re.search(r'id="new-token" type="text" value="([^"]+)"', response.content.decode())
    assert match, "the new token is on the page"
    return match[1]


# --- The page -------------------------------------------------------------------------------------


def test_the_tokens_page_needs_a_signed_in_user(client, db):
    response = client.get("/accounts/tokens/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/accounts/tokens/")


def test_a_new_token_is_shown_once_and_only_its_hash_is_stored(client, owner):
    client.force_login(owner)
    key = create_on_page(client)
    stored = ApiToken.objects.get(user=owner)
    assert stored.name == "export script"
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(ApiToken.objects.values().get())
    page = client.get("/accounts/tokens/")
    body = page.content.decode()
    assert key not in body
    assert stored.prefix in body and "export script" in body
    assert "no-store" in page["Cache-Control"]


def test_a_token_has_at_least_256_random_bits(owner):
    keys = {ApiToken.objects.issue(user=owner, name=f"t{n}")[1] for n in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert key.startswith("eh_")
        assert len(key.removeprefix("eh_")) >= 43  # 43 base64url characters: 258 bits
        assert re.fullmatch(r"eh_[A-Za-z0-9_-]+", key)


def test_a_token_needs_a_name(client, owner):
    client.force_login(owner)
    response = client.post("/accounts/tokens/", {"name": ""})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_user_cannot_hold_more_than_the_token_limit(client, owner):
    for n in range(MAX_TOKENS_PER_USER):
        ApiToken.objects.issue(user=owner, name=f"t{n}")
    client.force_login(owner)
    response = client.post("/accounts/tokens/", {"name": "one more"})
    assert response.status_code == 400
    assert "revoke one" in response.content.decode()
    assert ApiToken.objects.count() == MAX_TOKENS_PER_USER


def test_the_page_lists_only_the_users_own_tokens(client, owner, other):
    ApiToken.objects.issue(user=other, name="someone elses")
    ApiToken.objects.issue(user=owner, name="mine")
    client.force_login(owner)
    body = client.get("/accounts/tokens/").content.decode()
    assert "mine" in body and "someone elses" not in body


def test_token_names_are_escaped_on_the_page(client, owner):
    client.force_login(owner)
    create_on_page(client, name="<script>alert(1)</script>")
    body = client.get("/accounts/tokens/").content.decode()
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_revoking_a_token_makes_the_api_refuse_it(client, owner, token):
    client.force_login(owner)
    stored = ApiToken.objects.get()
    response = client.post(f"/accounts/tokens/{stored.pk}/revoke/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/tokens/"
    assert not ApiToken.objects.exists()
    assert "Revoked “script”" in client.get("/accounts/tokens/").content.decode()
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/albums/").status_code == 401


def test_nobody_can_revoke_another_users_token(client, other, token):
    client.force_login(other)
    stored = ApiToken.objects.get()
    assert client.post(f"/accounts/tokens/{stored.pk}/revoke/").status_code == 404
    assert ApiToken.objects.filter(pk=stored.pk).exists()


def test_revoking_needs_a_post(client, owner, token):
    client.force_login(owner)
    assert client.get(f"/accounts/tokens/{ApiToken.objects.get().pk}/revoke/").status_code == 405
    assert ApiToken.objects.exists()


@pytest.mark.parametrize("path", ["/accounts/tokens/", "/accounts/tokens/{pk}/revoke/"])
def test_creating_and_revoking_need_the_csrf_token(owner, token, path):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(path.format(pk=ApiToken.objects.get().pk), {"name": "sneaky"})
    assert response.status_code == 403
    assert ApiToken.objects.count() == 1


# --- Using a token --------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer"])
def test_a_token_signs_api_calls_in_as_its_user(client, owner, token, keyword):
    response = client.post(
        "/api/v1/albums/",
        {"hashtag": "#Tokens"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"{keyword} {token}",
    )
    assert response.status_code == 201
    assert Album.objects.get(hashtag="tokens").owner == owner


def test_token_calls_need_no_csrf_token(owner, token):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/albums/", {"hashtag": "nocsrf"}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "header",
    ["Bearer eh_wrong", "Bearer", "Bearer two parts", "Token ", "Bearer ünïcode"],
)
def test_a_bad_token_is_a_401_with_a_challenge(client, db, header):
    response = client.get("/api/v1/albums/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json()["detail"]


def test_other_authorization_schemes_are_left_alone(client, db):
    assert client.get("/api/v1/albums/", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz").status_code == 200


def test_an_anonymous_write_is_a_401_that_says_how_to_authenticate(client, db):
    response = client.post("/api/v1/albums/", {"hashtag": "x"}, content_type="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_disabled_accounts_token_is_refused(client, owner, token):
    owner.is_active = False
    owner.save()
    response = client.get("/api/v1/albums/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert "disabled" in response.json()["detail"]


def test_last_used_is_recorded_at_most_once_a_minute(client, owner, token):
    def use() -> datetime | None:
        assert client.get("/api/v1/albums/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
        return ApiToken.objects.get().last_used_at

    with time_machine.travel(NOW, tick=False):
        assert use() == NOW
    with time_machine.travel(NOW + timedelta(seconds=59), tick=False):
        assert use() == NOW
    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        assert use() == NOW + timedelta(seconds=61)


def test_a_token_call_within_the_minute_writes_nothing(still_clock, client, album, token, django_assert_num_queries):
    client.get("/api/v1/albums/", HTTP_AUTHORIZATION=f"Bearer {token}")
    with django_assert_num_queries(4):  # the token with its user; albums: count, rows, milestones
        client.get("/api/v1/albums/", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_the_token_user_gets_the_user_throttle_rate(still_clock, client, owner, token, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "1/min", "user": "2/min"}}
    statuses = [client.get("/api/v1/albums/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
