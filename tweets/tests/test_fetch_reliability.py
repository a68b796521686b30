"""fetch_tweets never loses a photo, never hangs, never pays twice for a post (issue 15).

End to end: the real command and twython client against the loopback HTTPS fake X API, which
answers with X's documented shapes (stale since_id, client-not-enrolled, UsageCapExceeded,
partial errors), and a loopback media server that misbehaves on demand.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError
from django.utils import timezone

from albums.hashtags import normalize_hashtag
from albums.models import Album
from albums.services import create_album
from everhash.testing.builders import COLOUR_PHOTOS, album_source, make_album, photo_bytes
from everhash.testing.fixtures import fetch_tweets
from pictures.models import Picture
from tweets.models import AlbumSource, FetchRun, PendingMedia, SourcePause


def due_again() -> None:
    """The next cron run, once every back-off is over: every album, source and waiting photo is due."""
    Album.objects.update(next_fetch_at=None)
    AlbumSource.objects.update(next_fetch_at=None)
    PendingMedia.objects.update(next_attempt_at=timezone.now())


@pytest.fixture
def sunset(owner):
    return make_album(owner=owner, hashtag="sunset", title="Sunsets")


def photo_post(fake_x, media_server, name: str, data: bytes | None = None, **kwargs) -> str:
    if data is not None:
        media_server.add(f"/media/{name}", data)
    return fake_x.add_post(photos=[(f"3_{name}", media_server.url(f"/media/{name}"))], **kwargs)


def text_posts(fake_x, count: int, **kwargs) -> None:
    """Posts without photos: X still returns (and bills) them; nothing to download."""
    for _ in range(count):
        fake_x.add_post(**kwargs)


# --- 1. A temporary media failure is retried by later runs -------------------------------------


def test_a_photo_whose_host_answers_503_is_stored_by_a_later_run(x_settings, fake_x, media_server, sunset):
    photo_post(fake_x, media_server, "good", photo_bytes("astronaut.png"))
    media_server.add_behaviour("/media/flaky", "status", code=503)
    photo_post(fake_x, media_server, "flaky")

    output = fetch_tweets()

    assert "1 added" in output and "1 photos wait for another try" in output
    pending = PendingMedia.objects.get()
    assert (pending.state, pending.reason, pending.media_key) == ("waiting", "http_status", "3_flaky")
    assert FetchRun.objects.get().rejections[0]["reason"] == "http_status"

    media_server.add("/media/flaky", photo_bytes("coffee.png"))
    due_again()
    searches = len(fake_x.search_requests())
    output = fetch_tweets("--album", "sunset")

    assert "1 stored on another try" in output
    assert Picture.objects.count() == 2
    stored = Picture.objects.get(media_key="3_flaky")
    assert stored.author_handle == "someone" and stored.permalink.endswith(pending.post_id)
    assert PendingMedia.objects.get().state == "stored"
    assert len(fake_x.search_requests()) == searches + 1  # the retry did not ask X again


def test_a_photo_still_failing_after_a_day_is_given_up_with_its_reason(x_settings, fake_x, media_server, sunset):
    media_server.add_behaviour("/media/down", "status", code=503)
    photo_post(fake_x, media_server, "down")
    fetch_tweets()
    PendingMedia.objects.update(created=timezone.now() - timedelta(hours=25))
    due_again()

    fetch_tweets("--album", "sunset")

    pending = PendingMedia.objects.get()
    assert pending.state == "gave_up"
    assert pending.message.startswith("gave up after 2 tries over 24 h: the server answered HTTP 503")
    assert FetchRun.objects.order_by("-started").first().rejections[0]["reason"] == "http_status"


def test_a_permanent_failure_is_final(x_settings, fake_x, media_server, sunset):
    media_server.add_behaviour("/media/gone", "status", code=410)
    photo_post(fake_x, media_server, "gone")

    assert "1 rejected" in fetch_tweets()
    assert not PendingMedia.objects.exists()


def test_owners_and_staff_see_the_photos_waiting_for_a_retry(
    x_settings, fake_x, media_server, sunset, client, owner, staff
):
    media_server.add_behaviour("/media/flaky", "status", code=503)
    photo_post(fake_x, media_server, "flaky")
    fetch_tweets()

    client.force_login(owner)
    assert "1 photo could not be downloaded yet" in client.get("/accounts/albums/").content.decode()
    status = client.get("/api/v1/albums/sunset/fetch-status/").json()
    assert [(p["media_key"], p["reason"]) for p in status["pending_photos"]] == [("3_flaky", "http_status")]
    client.force_login(staff)
    page = client.get("/admin/tweets/pendingmedia/").content.decode()
    assert "3_flaky" in page and "the server answered HTTP 503" in page


# --- 2. A total deadline on every X request, a budget for the run -------------------------------


def test_a_run_ends_within_its_budget_and_leaves_the_rest_for_the_next_run(
    x_settings, fake_x, media_server, owner, settings
):
    settings.EVERHASH_FETCH_RUN_BUDGET_SECONDS = 1
    make_album(owner=owner, hashtag="slow")
    make_album(owner=owner, hashtag="later")
    fake_x.fail_next("timeout", delay=1.5)  # the first album's answer arrives after the budget

    output = fetch_tweets()

    assert "#slow: ok" in output
    assert "time budget (1 s, EVERHASH_FETCH_RUN_BUDGET_SECONDS) is spent: 1 album(s) wait" in output
    assert [r.params["query"] for r in fake_x.search_requests()] == ["#slow has:images -is:retweet"]
    assert Album.objects.get(hashtag="later").next_fetch_at is None  # still due


# (The deadline on each X request: test_x_api.test_an_answer_trickling_in_is_cut_at_the_total_deadline.)


# --- 3. An overflowing poll is continued within its since_id ---------------------------------------


def test_an_overflowing_poll_is_continued_without_reading_a_post_twice(x_settings, fake_x, sunset):
    text_posts(fake_x, 30)
    fetch_tweets()
    assert fake_x.posts_returned() == 30
    text_posts(fake_x, 120)

    fetch_tweets("--album", "sunset", "--max-pages", "1")
    assert fake_x.posts_returned() == 30 + 100
    text_posts(fake_x, 20)
    due_again()
    fetch_tweets("--album", "sunset", "--max-pages", "1")  # the remaining 20 of the 120
    due_again()
    fetch_tweets("--album", "sunset", "--max-pages", "1")  # the 20 newer ones

    assert fake_x.posts_returned() == 30 + 120 + 20
    assert [run.posts_seen for run in FetchRun.objects.order_by("started")] == [30, 100, 20, 20]
    continuation = fake_x.search_requests()[2]
    assert continuation.params["since_id"] == fake_x.search_requests()[1].params["since_id"]


# --- 4. Only X's stale-since_id answer resets the cursor -----------------------------------------


def test_another_400_fails_the_album_with_xs_words_and_keeps_the_cursor(x_settings, fake_x, sunset):
    text_posts(fake_x, 3)
    fetch_tweets()
    cursor = album_source(sunset).newest_post_id
    fake_x.fail_next("400_query")
    due_again()

    output = fetch_tweets("--album", "sunset")

    assert "#sunset: failed" in output and "Ambiguous use of has:images" in output
    assert album_source(sunset).newest_post_id == cursor
    assert "400 Invalid Request" in FetchRun.objects.order_by("-started").first().error


def test_a_failed_run_never_clears_the_cursor(x_settings, fake_x, sunset):
    text_posts(fake_x, 3)
    album_source(sunset, newest_post_id="1", backfill_done=True)
    fake_x.fail_next("400")  # stale since_id: the cursor may be reset...
    fake_x.fail_next("503", times=4)  # ...but the walk from the newest post fails

    assert "#sunset: failed" in fetch_tweets()
    assert album_source(sunset).newest_post_id == "1"


# --- 5. A post whose author X could not return --------------------------------------------------


def test_a_post_whose_author_is_missing_is_skipped_with_xs_reason_and_never_fails_the_album(
    x_settings, fake_x, media_server, sunset
):
    post = photo_post(fake_x, media_server, "a", photo_bytes("chelsea.png"), author=("gone", "Gone"))
    fake_x.hide_author("gone")

    output = fetch_tweets()

    assert "#sunset: ok, 0 added, 0 duplicates, 0 rejected, 1 skipped, 1 posts" in output
    (entry,) = FetchRun.objects.get().rejections
    assert entry["post"] == post and entry["reason"] == "author_missing"
    assert "Could not find user" in entry["message"]
    sunset.refresh_from_db()
    assert sunset.failures == 0 and album_source(sunset).newest_post_id == post


# --- 6. X's own explanation; a usage cap pauses all X fetching ---------------------------------------


def test_a_plan_that_cannot_search_is_reported_in_xs_words(x_settings, fake_x, sunset):
    fake_x.fail_next("403_not_enrolled")

    with pytest.raises(CommandError) as caught:
        fetch_tweets()

    assert "403 Client Forbidden" in str(caught.value) and "(client-not-enrolled)" in str(caught.value)
    assert "EVERHASH_X_BEARER_TOKEN" not in str(caught.value)
    assert "client-not-enrolled" in FetchRun.objects.get().error


def test_a_usage_cap_pauses_every_album_until_the_month_ends_and_healthz_says_so(
    x_settings, fake_x, owner, staff, sunset, client
):
    make_album(owner=owner, hashtag="beach")
    fake_x.fail_next("usage_cap")

    output = fetch_tweets()

    assert output.count("UsageCapExceeded: Usage cap exceeded: Monthly product cap") == 1
    assert "1 album(s) wait" in output
    pause = SourcePause.objects.get()
    now = datetime.now(UTC)
    assert pause.kind == "usage_cap"
    assert pause.until == datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    assert len(fake_x.search_requests()) == 1

    due_again()
    output = fetch_tweets("--album", "beach")
    assert output.count("UsageCapExceeded") == 1
    assert len(fake_x.search_requests()) == 1  # no request until the cap can end
    client.force_login(staff)  # /healthz details are for staff; the public gets status words
    health = client.get("/healthz").json()["checks"]["fetch"]
    assert health["paused_sources"][0]["kind"] == "usage_cap"
    assert "UsageCapExceeded" in health["paused_sources"][0]["message"]

    fetch_tweets("--resume", "--album", "beach")  # credits bought: the operator lifts the pause
    assert len(fake_x.search_requests()) == 2


# --- 7. Every request and every post counted; the cost ------------------------------------------------


def test_every_request_and_every_post_returned_is_counted_and_priced(
    x_settings, fake_x, media_server, sunset, settings, client, staff
):
    settings.EVERHASH_X_COST_PER_POST = __import__("decimal").Decimal("0.005")
    fake_x.fail_next("503", times=4)
    fetch_tweets()
    assert FetchRun.objects.get().requests_made == 4

    photo_post(fake_x, media_server, "a", photo_bytes("chelsea.png"))
    fake_x.add_post(text="words only #sunset")
    original = photo_post(fake_x, media_server, "b", photo_bytes("rocket.jpg"))
    fake_x.add_retweet(original)
    due_again()
    summary = json.loads(fetch_tweets("--json"))

    assert summary["albums"][0]["posts_seen"] == 4 == fake_x.posts_returned()
    (usage,) = summary["posts_read"]
    assert (usage["album"], usage["posts_today"], usage["posts_month"]) == ("sunset", 4, 4)
    assert (usage["requests_month"], usage["cost_month"]) == (5, "0.020")
    client.force_login(staff)
    page = client.get("/admin/tweets/fetchrun/").content.decode()
    assert "Posts read from X" in page and "$0.020" in page


# --- 8. A run-level circuit breaker, concurrent downloads, failing hosts skipped ------------------------


def test_after_xs_429_no_other_album_asks_until_the_reset(x_settings, fake_x, owner, sunset):
    make_album(owner=owner, hashtag="beach")
    fake_x.fail_next("429", reset=int(time.time()) + 600)

    output = fetch_tweets()

    assert "#sunset: rate_limited" in output and "1 album(s) wait" in output
    assert len(fake_x.search_requests()) == 1


def test_remaining_zero_stops_asking_x_before_a_429(x_settings, fake_x, owner, sunset):
    make_album(owner=owner, hashtag="beach")
    fake_x.rate_limit_remaining = 1  # the next answer says x-rate-limit-remaining: 0

    fetch_tweets()

    assert [r.status for r in fake_x.search_requests()] == [200]
    assert SourcePause.objects.get().kind == "rate_limit"


def test_an_albums_photos_download_concurrently(x_settings, fake_x, media_server, sunset):
    for i, name in enumerate(COLOUR_PHOTOS[:4]):
        media_server.add_behaviour(f"/media/{i}", "stall", seconds=1.0, body=photo_bytes(name))
        photo_post(fake_x, media_server, str(i))

    started = time.monotonic()
    output = fetch_tweets()

    assert "4 added" in output
    assert time.monotonic() - started < 3.5  # one after the other: more than 4 s of stalls


def test_a_host_that_keeps_failing_is_skipped_for_the_rest_of_the_run(
    x_settings, fake_x, media_server, sunset, settings
):
    settings.EVERHASH_FETCH_DOWNLOAD_CONCURRENCY = 1
    for i in range(6):
        media_server.add_behaviour(f"/media/{i}", "status", code=503)
        photo_post(fake_x, media_server, str(i))

    fetch_tweets()

    assert sum(media_server.hits.values()) == 3  # EVERHASH_MEDIA_HOST_FAILURES
    reasons = sorted(PendingMedia.objects.values_list("reason", flat=True))
    assert reasons == ["host_skipped"] * 3 + ["http_status"] * 3  # none lost: all tried again later


# --- 9. A page without meta ---------------------------------------------------------------------------


def test_a_page_without_meta_still_moves_the_cursor(x_settings, fake_x, sunset):
    text_posts(fake_x, 3)
    newest = fake_x.add_post()
    fake_x.fail_next("no_meta")
    fetch_tweets()
    due_again()

    fetch_tweets("--album", "sunset")

    assert fake_x.search_requests()[-1].params["since_id"] == newest
    assert fake_x.posts_returned() == 4


# --- 10. The hashtag as people write it ----------------------------------------------------------------


@pytest.mark.parametrize("written", ["Straße", "İstanbul"])
def test_the_query_searches_the_hashtag_as_written(x_settings, fake_x, media_server, owner, written):
    album = create_album(owner=owner, hashtag=normalize_hashtag(written), written=f"#{written}")
    photo_post(fake_x, media_server, "a", photo_bytes("chelsea.png"), tag=written)

    fetch_tweets()

    assert fake_x.search_requests()[0].params["query"] == f"#{written} has:images -is:retweet"
    assert album.pictures.count() == 1


def test_an_album_added_on_the_site_keeps_the_hashtag_as_written(client, owner):
    client.force_login(owner)
    response = client.get("/album/add/", {"hashtag": "#Straße"}, follow=True)
    client.post(response.redirect_chain[-1][0])

    album = Album.objects.get()
    assert (album.hashtag, album.search_hashtag) == ("strasse", "Straße")


# --- 11. The earliest post of a duplicate photo is credited ---------------------------------------------


def test_the_earliest_post_of_a_duplicate_is_credited_in_the_same_page(x_settings, fake_x, media_server, sunset):
    data = photo_bytes("coffee.png")
    original = photo_post(fake_x, media_server, "original", data, author=("maker", "Maker"))
    photo_post(fake_x, media_server, "copy", data, author=("copycat", "Copy Cat"))

    fetch_tweets()

    picture = Picture.objects.get()
    assert (picture.author_handle, picture.post_id) == ("maker", original)
    assert picture.permalink == f"https://x.com/maker/status/{original}"


def test_the_earliest_post_is_credited_when_it_arrives_after_the_copy(x_settings, fake_x, media_server, sunset):
    data = photo_bytes("coffee.png")
    original = photo_post(fake_x, media_server, "original", data, author=("maker", "Maker"))
    text_posts(fake_x, 100)
    photo_post(fake_x, media_server, "copy", data, author=("copycat", "Copy Cat"))

    fetch_tweets("--max-pages", "1")
    assert Picture.objects.get().author_handle == "copycat"
    due_again()
    fetch_tweets("--album", "sunset", "--max-pages", "1")

    picture = Picture.objects.get()
    assert (picture.author_handle, picture.post_id) == ("maker", original)
