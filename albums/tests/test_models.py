from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from albums.models import Album, Milestone
from everhash.testing.builders import make_album


def test_one_album_per_hashtag(owner, other):
    make_album(owner=owner, hashtag="sunset")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_album(owner=other, hashtag="sunset")


def test_a_milestone_is_recorded_once_per_album(album, other):
    Milestone.objects.create(album=album, threshold=100, count=100)
    with pytest.raises(IntegrityError), transaction.atomic():
        Milestone.objects.create(album=album, threshold=100, count=130)
    second = make_album(owner=other, hashtag="sunrise")
    Milestone.objects.create(album=second, threshold=100, count=100)


def test_emoji_survive_in_titles(owner):
    album = make_album(owner=owner, hashtag="party", title="Party time 🎉")
    album.refresh_from_db()
    assert album.title == "Party time 🎉"


def test_unicode_hashtags_round_trip(owner):
    album = make_album(owner=owner, hashtag="日本")
    assert Album.objects.get(hashtag="日本") == album


def test_due_albums_are_active_and_past_their_next_fetch(owner):
    now = timezone.now()
    never = make_album(owner=owner, hashtag="never")
    past = make_album(owner=owner, hashtag="past", next_fetch_at=now - timedelta(minutes=1))
    make_album(owner=owner, hashtag="future", next_fetch_at=now + timedelta(minutes=1))
    make_album(owner=owner, hashtag="paused", is_active=False)
    assert set(Album.objects.due(now)) == {never, past}


def test_unlisted_album_links_carry_at_least_128_random_bits(owner):
    first = make_album(owner=owner, hashtag="a1")
    second = make_album(owner=owner, hashtag="a2")
    assert first.secret != second.secret
    assert len(first.secret) >= 22  # base64url: 22 characters carry 128 bits


def test_the_album_keeps_its_visible_count_through_every_change(album, owner):
    from everhash.testing.builders import add_pictures, make_stored_picture
    from pictures import moderation
    from pictures.models import Picture

    add_pictures(album, 5)
    make_stored_picture(album, "rocket.jpg")  # as a fetch stores it
    album.refresh_from_db()
    assert album.visible_count == 6
    first, second, third = Picture.objects.filter(album=album).values_list("pk", flat=True)[:3]
    moderation.hide(pictures=Picture.objects.filter(pk__in=[first, second]), by=owner)
    album.refresh_from_db()
    assert album.visible_count == 4
    moderation.delete(pictures=Picture.objects.filter(pk=third), by=owner)
    album.refresh_from_db()
    assert album.visible_count == 3 == album.pictures.visible().count()
