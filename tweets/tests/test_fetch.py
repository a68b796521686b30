"""fetch_tweets end to end: the real twython client against the loopback HTTPS fake X API,
real image bytes from a loopback media server, real storage, the real command."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError
from django.utils import timezone

from albums.models import Milestone
from everhash.testing.builders import COLOUR_PHOTOS, album_source, make_album, photo_bytes
from everhash.testing.fixtures import fetch_tweets
from pictures.models import Picture
from tweets.models import AlbumSource, FetchRun


def add_photo_post(fake_x, media_server, name: str, data: bytes, **kwargs) -> str:
    media_server.add(f"/media/{name}", data)
    key = f"3_{abs(hash(name)) % 10**12}"
    return fake_x.add_post(photos=[(key, media_server.url(f"/media/{name}"), 800, 600, f"alt of {name}")], **kwargs)


def stored_files() -> set[str]:
    root = default_storage.location
    import os

    return {os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files}


def test_it_stores_new_photos_and_a_rerun_adds_nothing(x_settings, fake_x, media_server, album):
    for name in COLOUR_PHOTOS[:4]:
        add_photo_post(fake_x, media_server, name, photo_bytes(name), author=("ana", "Ana 🌅"), likes=7)
    output = fetch_tweets()
    assert "#sunset: ok, 4 added, 0 duplicates, 0 rejected" in output
    pictures = list(Picture.objects.order_by("posted_at"))
    assert len(pictures) == 4
    picture = pictures[0]
    assert picture.author_handle == "ana" and picture.author_name == "Ana 🌅"
    assert picture.like_count == 7
    assert picture.permalink == f"https://x.com/ana/status/{picture.post_id}"
    assert picture.alt_text == "alt of astronaut.png"
    assert set(picture.renditions) == {"thumb", "square", "medium", "large"}
    assert picture.renditions["thumb"]["width"] == 200
    assert default_storage.exists(picture.original_key)
    for rendition in picture.renditions.values():
        assert default_storage.exists(rendition["key"])
    # Each image was downloaded once.
    assert all(media_server.hits[f"/media/{name}"] == 1 for name in COLOUR_PHOTOS[:4])

    files = stored_files()
    album.refresh_from_db()
    assert album_source(album).newest_post_id and album.last_success_at
    # The run ended by building the album's collage from the new pictures.
    assert not album.collage_stale
    assert album.collage.picture_count == 4
    output = fetch_tweets("--album", "sunset")
    assert "0 added" in output
    assert Picture.objects.count() == 4
    assert stored_files() == files
    assert fake_x.search_requests()[-1].params["since_id"] == album_source(album).newest_post_id


def test_polling_picks_up_posts_published_after_the_last_run(x_settings, fake_x, media_server, album):
    add_photo_post(fake_x, media_server, "a", photo_bytes("chelsea.png"))
    fetch_tweets()
    add_photo_post(fake_x, media_server, "b", photo_bytes("coffee.png"))
    assert "1 added" in fetch_tweets("--album", "sunset")
    assert Picture.objects.count() == 2


def test_every_photo_of_a_multi_photo_post_is_kept_and_videos_are_not(x_settings, fake_x, media_server, album):
    photos = []
    for i, name in enumerate(COLOUR_PHOTOS[:4]):
        media_server.add(f"/m/{i}", photo_bytes(name))
        photos.append((f"3_{i}", media_server.url(f"/m/{i}"), 800, 600))
    fake_x.add_post(photos=photos, videos=["7_1"], gifs=["16_1"])
    fetch_tweets()
    assert Picture.objects.count() == 4
    assert len(set(Picture.objects.values_list("post_id", flat=True))) == 1


def test_retweets_are_never_credited_to_the_retweeter(x_settings, fake_x, media_server, album):
    original = add_photo_post(fake_x, media_server, "o", photo_bytes("rocket.jpg"), author=("maker", "Maker"))
    fake_x.add_retweet(original, by=("copycat", "Copy Cat"))
    fetch_tweets()
    assert list(Picture.objects.values_list("author_handle", flat=True)) == ["maker"]


def test_reencoded_and_resized_copies_are_skipped_as_duplicates(x_settings, fake_x, media_server, album):
    add_photo_post(fake_x, media_server, "orig", photo_bytes("coffee.png", quality=95))
    add_photo_post(fake_x, media_server, "same-bytes", photo_bytes("coffee.png", quality=95))
    add_photo_post(fake_x, media_server, "q70", photo_bytes("coffee.png", quality=70))
    add_photo_post(fake_x, media_server, "half", photo_bytes("coffee.png", scale=0.5))
    add_photo_post(fake_x, media_server, "png", photo_bytes("coffee.png", fmt="PNG"))
    add_photo_post(fake_x, media_server, "mirror", photo_bytes("coffee.png", mirror=True))
    assert "2 added, 4 duplicates" in fetch_tweets()
    run = FetchRun.objects.get()
    assert (run.pictures_added, run.duplicates) == (2, 4)


def test_the_same_photo_lands_in_two_albums(x_settings, fake_x, media_server, album, other):
    make_album(owner=other, hashtag="beach")
    media_server.add("/m/both", photo_bytes("retina.jpg"))
    fake_x.add_post(text="Lovely #sunset #beach", photos=[("3_77", media_server.url("/m/both"))])
    fetch_tweets()
    assert sorted(Picture.objects.values_list("album__hashtag", flat=True)) == ["beach", "sunset"]


@pytest.mark.parametrize(
    ("kind", "body", "opts", "reason"),
    [
        ("body", b"<html><body>not an image</body></html>", {}, "format"),
        ("body", photo_bytes("rocket.jpg")[:3000], {}, "truncated"),
        ("body", b"BM" + b"\0" * 60, {}, "format"),
        ("status", b"", {"code": 404}, "http_status"),
        ("redirect", b"", {"to": "https://127.0.0.2:1/x.jpg"}, "private_address"),
        ("huge_length", b"", {}, "too_large"),
    ],
)
def test_a_bad_image_is_recorded_and_skipped_while_the_rest_is_stored(
    x_settings, fake_x, media_server, album, kind, body, opts, reason
):
    add_photo_post(fake_x, media_server, "good", photo_bytes("astronaut.png"))
    if kind == "body":
        media_server.add("/media/bad", body)
    else:
        media_server.add_behaviour("/media/bad", kind, **opts)
    fake_x.add_post(photos=[("3_bad", media_server.url("/media/bad"))])
    output = fetch_tweets()
    assert "1 added, 0 duplicates, 1 rejected" in output
    run = FetchRun.objects.get()
    assert run.rejected == 1
    assert run.rejections[0]["reason"] == reason
    assert run.rejections[0]["message"]
    assert run.rejections[0]["media_key"] == "3_bad"


def test_a_crash_between_files_and_row_is_completed_by_the_next_run(
    x_settings, fake_x, media_server, album, monkeypatch
):
    for name in COLOUR_PHOTOS[:3]:
        add_photo_post(fake_x, media_server, name, photo_bytes(name))
    real_create = Picture.objects.create
    calls = []

    def crash_on_second(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("the process was killed")  # not an Exception: nothing catches it
        return real_create(**kwargs)

    monkeypatch.setattr(Picture.objects, "create", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        fetch_tweets()
    monkeypatch.undo()
    assert Picture.objects.count() == 1
    fetch_tweets("--album", "sunset")
    assert Picture.objects.count() == 3
    assert Picture.objects.values("content_hash").distinct().count() == 3


def test_a_429_stores_the_reset_time_and_no_request_is_made_before_it(x_settings, fake_x, media_server, album):
    reset = int(time.time()) + 600
    fake_x.fail_next("429", reset=reset)
    output = fetch_tweets()
    assert "rate_limited" in output
    album.refresh_from_db()
    limited = album_source(album).rate_limited_until
    assert abs(limited.timestamp() - reset) < 2
    assert album.next_fetch_at >= limited
    requests = len(fake_x.search_requests())
    assert "rate limit is used up" in fetch_tweets("--album", "sunset")
    assert len(fake_x.search_requests()) == requests


def test_server_errors_are_retried_with_backoff(x_settings, fake_x, media_server, album):
    add_photo_post(fake_x, media_server, "a", photo_bytes("chelsea.png"))
    fake_x.fail_next("503", times=2)
    assert "1 added" in fetch_tweets()
    assert len(x_settings) == 2  # two back-off sleeps, then success
    assert FetchRun.objects.get().requests_made == 3


def test_a_refused_token_stops_the_run_with_a_clear_message(x_settings, fake_x, album, settings):
    settings.EVERHASH_X_BEARER_TOKEN = "wrong"
    with pytest.raises(CommandError, match="X refused the bearer token"):
        fetch_tweets()
    album.refresh_from_db()
    assert album.failures == 0  # not the album's fault


def test_a_stale_since_id_resets_the_cursor(x_settings, fake_x, media_server, album):
    add_photo_post(fake_x, media_server, "a", photo_bytes("chelsea.png"))
    album_source(album, newest_post_id="1", backfill_done=True)
    fake_x.fail_next("400")
    assert "1 added" in fetch_tweets()
    assert int(album_source(album).newest_post_id) > 1


def test_one_failing_album_backs_off_and_the_others_continue(x_settings, fake_x, media_server, owner, album):
    make_album(owner=owner, hashtag="beach")
    media_server.add("/m/b", photo_bytes("rocket.jpg"))
    fake_x.add_post(tag="beach", photos=[("3_b", media_server.url("/m/b"))])
    fake_x.fail_next("500", times=4)  # all of sunset's attempts (it is fetched first)
    output = fetch_tweets()
    assert "#sunset: failed" in output
    assert "#beach: ok, 1 added" in output
    album.refresh_from_db()
    assert album.failures == 1
    assert album.last_error
    assert album.next_fetch_at > timezone.now() + timedelta(minutes=30)


def test_the_first_run_walks_older_pages_within_the_page_budget(x_settings, fake_x, media_server, album):
    media_server.add("/m/x", photo_bytes("chelsea.png"))
    fake_x.add_posts(250, photo_url=media_server.url("/m/x") + "?k={media_key}")
    fetch_tweets("--max-pages", "2")
    assert FetchRun.objects.get().posts_seen == 200
    state = album_source(album)
    assert state.backfill_token and not state.backfill_done
    fetch_tweets("--album", "sunset", "--max-pages", "2")
    state = album_source(album)
    assert state.backfill_done and not state.backfill_token
    # The same bytes 250 times: downloaded once per media key, stored once.
    assert Picture.objects.count() == 1


def test_dry_run_stores_nothing(x_settings, fake_x, media_server, album):
    add_photo_post(fake_x, media_server, "a", photo_bytes("chelsea.png"))
    assert "would store 1 new photos" in fetch_tweets("--dry-run")
    assert not Picture.objects.exists()
    assert not FetchRun.objects.exists()
    assert not AlbumSource.objects.exists()  # not even the album's first source row
    assert media_server.hits["/media/a"] == 0


def test_json_prints_a_summary_for_monitoring(x_settings, fake_x, media_server, album):
    add_photo_post(fake_x, media_server, "a", photo_bytes("chelsea.png"))
    summary = json.loads(fetch_tweets("--json"))
    assert summary["sources"] == ["x"]
    assert summary["albums"][0]["hashtag"] == "sunset"
    assert summary["albums"][0]["added"] == 1


def test_a_second_run_says_already_running(x_settings, settings, tmp_path, album):
    from tweets.management.commands.fetch_tweets import RunLock

    settings.VAR_DIR = tmp_path
    with RunLock(tmp_path / "fetch_tweets.lock").hold() as state:
        assert state == "held"
        assert "already running" in fetch_tweets()


def test_paused_albums_are_not_fetched(x_settings, fake_x, owner):
    make_album(owner=owner, hashtag="paused", is_active=False)
    assert "No album is due" in fetch_tweets()
    assert fake_x.search_requests() == []


def test_the_100th_picture_sends_the_milestone_email_once(
    x_settings, fake_x, media_server, album, settings, mailoutbox
):
    settings.EVERHASH_MILESTONES = [3]
    for name in COLOUR_PHOTOS[:4]:
        add_photo_post(fake_x, media_server, name, photo_bytes(name))
    fetch_tweets()
    fetch_tweets("--album", "sunset")
    assert [m.subject for m in mailoutbox] == ["Sunsets reached 3 pictures"]
    assert Milestone.objects.get().notified_at is not None


def test_a_backfill_walk_refreshes_like_counts_for_popular(x_settings, fake_x, media_server, album):
    post_id = add_photo_post(fake_x, media_server, "a", photo_bytes("chelsea.png"), likes=3)
    fetch_tweets()
    fake_x._posts[int(post_id)].likes = 300
    fetch_tweets("--album", "sunset", "--backfill")
    assert Picture.objects.get().like_count == 300


@pytest.mark.parametrize(
    "error",
    [
        ValueError("box offset can't be negative"),
        # Pillow raises OSError for codec failures: an odd picture, not the storage being down.
        OSError("broken data stream when writing image file"),
    ],
)
def test_a_bug_met_by_one_picture_is_recorded_and_the_others_are_stored(
    x_settings, fake_x, media_server, album, monkeypatch, error
):
    import everhash.lib.images as images

    for name in COLOUR_PHOTOS[:3]:
        add_photo_post(fake_x, media_server, name, photo_bytes(name))
    real = images.make_renditions
    calls = []

    def fails_once(verified):
        calls.append(1)
        if len(calls) == 2:
            raise error
        return real(verified)

    monkeypatch.setattr("pictures.services.make_renditions", fails_once)
    output = fetch_tweets()
    assert "2 added, 0 duplicates, 1 rejected" in output
    run = FetchRun.objects.get()
    assert run.rejections[0]["reason"] == "internal"
    album.refresh_from_db()
    assert album.last_success_at is not None and album.failures == 0
