"""Reserved words: no album may take a hashtag its own URLs use (`/album/add/` is a page)."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import get_resolver

from albums.hashtags import RESERVED, normalize_hashtag, normalize_new_hashtag
from albums.models import Album
from users.models import ApiToken


def test_every_literal_album_route_is_a_reserved_word():
    literals = set()
    for pattern in get_resolver().url_patterns:
        for inner in getattr(pattern, "url_patterns", [pattern]):
            match = re.match(r"album/([a-z]+)/", str(inner.pattern))
            if match:
                literals.add(match.group(1))
    assert "add" in literals
    assert literals <= RESERVED


@pytest.mark.parametrize("raw", ["add", "#ADD", "#Add"])
def test_a_new_album_cannot_be_named_after_a_reserved_word(raw):
    with pytest.raises(ValidationError, match="uses for its own pages"):
        normalize_new_hashtag(raw)
    assert normalize_hashtag(raw) == "add"  # still a hashtag to read, just not an album to create


def test_the_api_refuses_a_reserved_hashtag(client, owner):
    key = ApiToken.objects.issue(user=owner, name="script")[1]
    response = client.post(
        "/api/v1/albums/", {"hashtag": "#add"}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 400
    assert "uses for its own pages" in response.json()["hashtag"][0]
    assert not Album.objects.filter(hashtag="add").exists()


def test_the_form_refuses_a_reserved_hashtag_at_both_steps(client, owner):
    client.force_login(owner)
    response = client.post("/album/add/", {"hashtag": "#add"})
    assert response.status_code == 400
    assert "uses for its own pages" in response.content.decode()
    response = client.post("/album/add/add/")
    assert response.status_code == 400
    assert not Album.objects.filter(hashtag="add").exists()


def test_the_admin_cannot_store_a_reserved_hashtag(owner):
    with pytest.raises(ValidationError):
        Album(owner=owner, hashtag="add").full_clean()
