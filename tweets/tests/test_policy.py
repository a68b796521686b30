"""What the fetch does with moderated posts: block lists, takedowns, sensitive media, approve-first.

End to end like test_fetch.py: the real fetch_tweets command, twython against the loopback
HTTPS fake X API, real image bytes from the loopback media server.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from albums.models import Album
from everhash.testing.builders import COLOUR_PHOTOS, make_album, photo_bytes
from everhash.testing.fixtures import fetch_tweets
from pictures import moderation
from pictures.models import BlockedAuthor, Picture
from tweets.models import FetchRun
from tweets.services import policy_status
from tweets.sources import Post

Status = Picture.Status


def post(fake_x, media_server, **kwargs) -> str:
    """A one-photo post, its photo served at /media/<post id>; each post gets a different photo."""
    n = len(fake_x._posts)
    post_id = next(fake_x._ids)  # as fake_x.add_posts does
    path = f"/media/{post_id}"
    media_server.add(
        path, photo_bytes(COLOUR_PHOTOS[n % len(COLOUR_PHOTOS)], scale=1 - (n // len(COLOUR_PHOTOS)) * 0.2)
    )
    return fake_x.add_post(id=post_id, photos=[(f"3_{post_id}", media_server.url(path), 800, 600)], **kwargs)


def by_author() -> dict[str, str]:
    return dict(Picture.objects.values_list("author_handle", "status"))


def test_a_banned_authors_new_posts_are_skipped(x_settings, fake_x, media_server, staff, album):
    post(fake_x, media_server, author=("Spammer", "Spam Co"))
    post(fake_x, media_server, author=("ana", "Ana"))
    fetch_tweets()
    _, hidden = moderation.ban_author(source="x", handle="spammer", album=album, by=staff)
    assert hidden == 1
    spam = post(fake_x, media_server, author=("SPAMMER", "Spam Co"))
    post(fake_x, media_server, author=("bob", "Bob"))
    output = fetch_tweets("--album", "sunset")
    assert "1 added, 0 duplicates, 0 rejected, 1 skipped" in output
    assert FetchRun.objects.order_by("-started").first().skipped == 1
    assert Picture.objects.filter(post_id=spam).count() == 0
    assert Picture.objects.filter(author_handle__iexact="spammer").get().status == Status.HIDDEN
    assert media_server.hits[f"/media/{spam}"] == 0  # never downloaded
    assert by_author()["bob"] == Status.VISIBLE


def test_a_ban_from_every_album_applies_to_every_album(x_settings, fake_x, media_server, staff, album, other):
    make_album(owner=other, hashtag="beach")
    moderation.ban_author(source="x", handle="@troll", album=None, by=staff)
    post(fake_x, media_server, author=("troll", "Troll"), text="Look #sunset #beach")
    post(fake_x, media_server, author=("ana", "Ana"), text="Look #sunset #beach")
    fetch_tweets()
    assert sorted(Picture.objects.values_list("album__hashtag", "author_handle")) == [
        ("beach", "ana"),
        ("sunset", "ana"),
    ]


def test_a_ban_from_another_album_does_not_apply_here(x_settings, fake_x, media_server, staff, album, other):
    beach = make_album(owner=other, hashtag="beach")
    moderation.ban_author(source="x", handle="ana", album=beach, by=staff)
    post(fake_x, media_server, author=("ana", "Ana"))
    assert "1 added" in fetch_tweets("--album", "sunset")
    assert by_author() == {"ana": Status.VISIBLE}


def test_a_ban_on_another_source_does_not_apply(x_settings, fake_x, media_server, staff, album):
    moderation.ban_author(source="sample", handle="ana", album=album, by=staff)
    post(fake_x, media_server, author=("ana", "Ana"))
    fetch_tweets()
    assert by_author() == {"ana": Status.VISIBLE}


@pytest.mark.parametrize(
    ("action", "expected"),
    [(Album.BlockedWordsAction.HOLD, {"ana": Status.PENDING}), (Album.BlockedWordsAction.SKIP, {})],
)
def test_a_blocked_word_holds_or_skips_the_post_per_album(
    x_settings, fake_x, media_server, staff, album, action, expected
):
    Album.objects.filter(pk=album.pk).update(blocked_words_action=action)
    moderation.block_word(word="Free Crypto", album=album, by=staff)
    post(fake_x, media_server, author=("ana", "Ana"), text="FREE  crypto!! #sunset")
    post(fake_x, media_server, author=("bob", "Bob"), text="Freedom, cryptography #sunset")
    output = fetch_tweets()
    assert by_author() == {**expected, "bob": Status.VISIBLE}
    assert f"{0 if expected else 1} skipped" in output


def test_a_global_blocked_word_applies_to_every_album(x_settings, fake_x, media_server, staff, album, other):
    make_album(owner=other, hashtag="beach", blocked_words_action=Album.BlockedWordsAction.SKIP)
    moderation.block_word(word="spoiler", album=None, by=staff)
    post(fake_x, media_server, author=("ana", "Ana"), text="Spoiler: #sunset #beach")
    fetch_tweets()
    assert list(Picture.objects.values_list("album__hashtag", "status")) == [("sunset", Status.PENDING)]


def test_another_albums_blocked_word_does_not_apply(x_settings, fake_x, media_server, staff, album, other):
    moderation.block_word(word="spoiler", album=make_album(owner=other, hashtag="beach"), by=staff)
    post(fake_x, media_server, author=("ana", "Ana"), text="Spoiler #sunset")
    fetch_tweets("--album", "sunset")
    assert by_author() == {"ana": Status.VISIBLE}


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (Album.SensitiveMedia.SKIP, {"safe": Status.VISIBLE}),
        (Album.SensitiveMedia.HOLD, {"safe": Status.VISIBLE, "flagged": Status.PENDING}),
        (Album.SensitiveMedia.ALLOW, {"safe": Status.VISIBLE, "flagged": Status.VISIBLE}),
    ],
)
def test_sensitive_posts_are_skipped_held_or_allowed_per_album(
    x_settings, fake_x, media_server, album, setting, expected
):
    Album.objects.filter(pk=album.pk).update(sensitive_media=setting)
    post(fake_x, media_server, author=("flagged", "F"), sensitive=True)
    post(fake_x, media_server, author=("safe", "S"))
    fetch_tweets()
    assert by_author() == expected


def test_sensitive_posts_are_held_by_default(x_settings, fake_x, media_server, album):
    post(fake_x, media_server, author=("flagged", "F"), sensitive=True)
    fetch_tweets()
    assert by_author() == {"flagged": Status.PENDING}


def test_an_approve_first_album_holds_everything_until_approved(x_settings, fake_x, media_server, staff, album, client):
    Album.objects.filter(pk=album.pk).update(moderation=Album.Moderation.APPROVE_FIRST)
    post(fake_x, media_server, author=("ana", "Ana"))
    post(fake_x, media_server, author=("bob", "Bob"))
    assert "2 added" in fetch_tweets()
    assert set(by_author().values()) == {Status.PENDING}
    assert client.get("/album/sunset/feed.json").json()["pictures"] == []
    moderation.approve(pictures=Picture.objects.filter(author_handle="ana"), by=staff)
    assert [p["author_handle"] for p in client.get("/album/sunset/feed.json").json()["pictures"]] == ["ana"]


def test_a_taken_down_post_is_never_fetched_again(x_settings, fake_x, media_server, staff, album, other):
    beach = make_album(owner=other, hashtag="beach")
    taken = post(fake_x, media_server, author=("ana", "Ana"), text="Mine #sunset #beach")
    post(fake_x, media_server, author=("bob", "Bob"))
    fetch_tweets()
    assert Picture.objects.filter(post_id=taken).count() == 2
    _, deleted = moderation.takedown(post=f"https://x.com/ana/status/{taken}", by=staff)
    assert deleted == 2
    hits = media_server.hits[f"/media/{taken}"]
    output = fetch_tweets("--album", "sunset", "--album", "beach", "--backfill")  # walks every post again
    assert "#sunset: ok, 0 added, 0 duplicates, 0 rejected, 1 skipped, 2 posts" in output
    assert "#beach: ok, 0 added, 0 duplicates, 0 rejected, 1 skipped, 1 posts" in output
    assert not Picture.objects.filter(post_id=taken).exists()
    assert media_server.hits[f"/media/{taken}"] == hits  # not downloaded again
    assert beach.pictures.count() == 0


def test_a_deleted_picture_is_not_fetched_into_its_album_again(x_settings, fake_x, media_server, staff, album, other):
    beach = make_album(owner=other, hashtag="beach")
    gone = post(fake_x, media_server, author=("ana", "Ana"), text="#sunset #beach")
    fetch_tweets()
    moderation.delete(pictures=Picture.objects.filter(album=album, post_id=gone), by=staff)
    output = fetch_tweets("--album", "sunset", "--backfill")
    assert "#sunset: ok, 0 added, 0 duplicates, 0 rejected, 0 skipped, 1 posts" in output
    assert not album.pictures.exists()
    assert beach.pictures.filter(post_id=gone).exists()  # deleted from one album only


def test_a_hidden_picture_stays_hidden_after_another_fetch(x_settings, fake_x, media_server, staff, album):
    post(fake_x, media_server, author=("ana", "Ana"))
    fetch_tweets()
    moderation.hide(pictures=Picture.objects.all(), by=staff)
    assert "0 added, 0 duplicates, 0 rejected, 0 skipped, 1 posts" in fetch_tweets("--album", "sunset", "--backfill")
    assert by_author() == {"ana": Status.HIDDEN}


def test_the_block_lists_are_read_once_per_album_per_run(x_settings, fake_x, media_server, staff, album):
    moderation.ban_author(source="x", handle="spammer", album=album, by=staff)
    moderation.block_word(word="spoiler", album=None, by=staff)
    for _ in range(5):
        post(fake_x, media_server, author=("spammer", "S"))
        post(fake_x, media_server, author=("ana", "Ana"), text="spoiler #sunset")
    with CaptureQueriesContext(connection) as queries:
        assert "10 posts" in fetch_tweets()
    for table in ("pictures_blockedauthor", "pictures_blockedword", "pictures_takedown", "pictures_deletedmedia"):
        assert sum(table in q["sql"] for q in queries.captured_queries) == 1, table


# policy_status on its own: the order of the rules.


def a_post(**kwargs) -> Post:
    values = {
        "id": "1",
        "permalink": "https://x.com/ana/status/1",
        "author_handle": "ana",
        "author_name": "Ana",
        "text": "#sunset",
        "like_count": 0,
        "posted_at": datetime(2026, 11, 1, tzinfo=UTC),
        "sensitive": False,
        "photos": (),
    }
    return Post(**{**values, **kwargs})


def decide(album: Album, **kwargs) -> str | None:
    return policy_status(album=album, post=a_post(**kwargs), policy=moderation.Policy.for_album(album, source="x"))


def test_skipping_wins_over_holding_and_holding_over_showing(staff, album):
    moderation.block_word(word="spoiler", album=album, by=staff)
    assert decide(album) == Status.VISIBLE
    assert decide(album, text="spoiler") == Status.PENDING
    assert decide(album, sensitive=True) == Status.PENDING
    Album.objects.filter(pk=album.pk).update(sensitive_media=Album.SensitiveMedia.SKIP)
    album.refresh_from_db()
    assert decide(album, text="spoiler", sensitive=True) is None  # held for the word, skipped as sensitive
    Album.objects.filter(pk=album.pk).update(
        sensitive_media=Album.SensitiveMedia.ALLOW,
        blocked_words_action=Album.BlockedWordsAction.SKIP,
        moderation=Album.Moderation.APPROVE_FIRST,
    )
    album.refresh_from_db()
    assert decide(album, sensitive=True) == Status.PENDING  # approve-first holds everything
    assert decide(album, text="SPOILER!") is None
    moderation.ban_author(source="x", handle="ana", album=album, by=staff)
    assert decide(album) is None
    assert decide(album, author_handle="bob") == Status.PENDING
    moderation.takedown(post="2", by=staff)
    assert decide(album, id="2", author_handle="bob") is None
    assert BlockedAuthor.objects.count() == 1
