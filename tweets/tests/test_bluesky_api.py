"""The Bluesky source: the real atproto SDK against a loopback HTTPS Bluesky service
(fake_bluesky.py), with the session kept in the database between runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from everhash.testing.builders import photo_bytes
from tweets.bluesky_api import BlueskySource, DatabaseSessionStore
from tweets.models import BlueskySession
from tweets.sources import AuthFailed, RateLimited, SourceError

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("social_settings")]


def make_source(fake, tls_ca, sleeps: list | None = None, **kwargs) -> BlueskySource:
    """A source as a new run builds it: the session comes from the database, if there is one."""
    options = {"handle": fake.handle, "app_password": fake.password, **kwargs}
    return BlueskySource(
        api_url=fake.url,
        store=DatabaseSessionStore(api_url=fake.url, handle=options["handle"]),
        ca_bundle=tls_ca.ca_path,
        sleep=(sleeps if sleeps is not None else []).append,
        **options,
    )


def test_it_pages_to_older_posts_with_the_cursor(fake_bluesky, tls_ca):
    uris = [fake_bluesky.add_post(images=[b"img %d" % n]) for n in range(150)]
    source = make_source(fake_bluesky, tls_ca)

    newest = source.search(hashtag="#Sunset")
    older = source.search(hashtag="sunset", next_token=newest.next_token)

    assert [p.id for p in newest.posts + older.posts] == list(reversed(uris))
    assert older.next_token is None
    first, second = fake_bluesky.search_requests()
    assert first.params == {"q": ["#sunset"], "tag": ["sunset"], "sort": ["latest"], "limit": ["100"]}
    assert second.params["cursor"] == [newest.next_token]


def test_polling_stops_at_the_newest_post_seen_and_a_rerun_reads_nothing_old(fake_bluesky, tls_ca):
    for n in range(3):
        fake_bluesky.add_post(images=[b"old %d" % n])
    source = make_source(fake_bluesky, tls_ca)
    cursor = source.search(hashtag="sunset").newest_id

    nothing = source.search(hashtag="sunset", since_id=cursor)
    fresh = [fake_bluesky.add_post(images=[b"new %d" % n]) for n in range(2)]
    page = source.search(hashtag="sunset", since_id=cursor)

    assert nothing.posts == [] and nothing.next_token is None
    assert [p.id for p in page.posts] == list(reversed(fresh))
    assert page.next_token is None  # it reached the post already seen
    assert fake_bluesky.search_requests()[-1].params["since"] == [cursor]
    assert page.newest_id > cursor


def test_more_new_posts_than_a_page_are_walked_until_the_newest_seen(fake_bluesky, tls_ca):
    fake_bluesky.add_post(images=[b"seen"])
    source = make_source(fake_bluesky, tls_ca)
    cursor = source.search(hashtag="sunset").newest_id
    fresh = [fake_bluesky.add_post(images=[b"new %d" % n]) for n in range(120)]

    top = source.search(hashtag="sunset", since_id=cursor)
    rest = source.search(hashtag="sunset", since_id=cursor, next_token=top.next_token)

    assert [p.id for p in top.posts + rest.posts] == list(reversed(fresh))
    assert rest.next_token is None


def test_images_come_from_image_embeds_and_quote_posts_with_media_only(fake_bluesky, tls_ca):
    image = photo_bytes("rocket.jpg")
    plain = fake_bluesky.add_post(images=[(image, "A rocket", 800, 1000), b"second"])
    quoting = fake_bluesky.add_post(images=[b"quoted"], embed="record_with_media")
    fake_bluesky.add_post(embed="video")
    fake_bluesky.add_post(embed="external")
    fake_bluesky.add_post()  # text only
    source = make_source(fake_bluesky, tls_ca)

    posts = {p.id: p for p in source.search(hashtag="sunset").posts}

    assert set(posts) == {plain, quoting}
    photo = posts[plain].photos[0]
    assert (photo.width, photo.height, photo.alt_text) == (800, 1000, "A rocket")
    assert len(posts[plain].photos) == 2
    assert source.download(photo) == image  # from the CDN, which is not in EVERHASH_MEDIA_HOSTS


def test_adult_and_graphic_labels_mark_the_post_sensitive(fake_bluesky, tls_ca):
    plain = fake_bluesky.add_post(images=[b"a"])
    labelled = fake_bluesky.add_post(images=[b"b"], labels=["porn"])
    self_labelled = fake_bluesky.add_post(images=[b"c"], self_labels=["graphic-media"])
    harmless_label = fake_bluesky.add_post(images=[b"d"], labels=["!no-unauthenticated"])

    posts = {p.id: p for p in make_source(fake_bluesky, tls_ca).search(hashtag="sunset").posts}

    assert [posts[uri].sensitive for uri in (plain, labelled, self_labelled, harmless_label)] == [
        False,
        True,
        True,
        False,
    ]


def test_a_post_keeps_its_author_permalink_text_and_likes(fake_bluesky, tls_ca):
    uri = fake_bluesky.add_post(author="ada.bsky.social", display_name="Ada L.", text="Tea", images=[b"x"], likes=12)

    post = make_source(fake_bluesky, tls_ca).search(hashtag="sunset").posts[0]

    assert post.id == uri
    assert post.permalink == f"https://bsky.app/profile/ada.bsky.social/post/{uri.rsplit('/', 1)[1]}"
    assert (post.author_handle, post.author_name, post.text, post.like_count) == (
        "ada.bsky.social",
        "Ada L.",
        "Tea #sunset",
        12,
    )


def test_it_signs_in_once_and_later_runs_reuse_the_kept_session(fake_bluesky, tls_ca):
    fake_bluesky.add_post(images=[b"x"])

    make_source(fake_bluesky, tls_ca).search(hashtag="sunset")
    make_source(fake_bluesky, tls_ca).search(hashtag="sunset")  # a later run: a new source object

    assert len(fake_bluesky.session_requests("create")) == 1
    assert len(fake_bluesky.session_requests("refresh")) == 0
    stored = BlueskySession.objects.get()
    assert stored.handle == fake_bluesky.handle and fake_bluesky.password not in stored.session


def test_an_expired_access_token_is_refreshed_not_recreated(fake_bluesky, tls_ca):
    fake_bluesky.add_post(images=[b"x"])
    with time_machine.travel(datetime.now(UTC), tick=True) as clock:
        make_source(fake_bluesky, tls_ca).search(hashtag="sunset")
        before = BlueskySession.objects.get().session
        clock.shift(timedelta(hours=3))

        page = make_source(fake_bluesky, tls_ca).search(hashtag="sunset")

    assert len(page.posts) == 1
    assert len(fake_bluesky.session_requests("create")) == 1
    assert len(fake_bluesky.session_requests("refresh")) == 1
    assert BlueskySession.objects.get().session != before  # the rotated tokens are kept


def test_when_the_refresh_fails_it_signs_in_again_once(fake_bluesky, tls_ca):
    fake_bluesky.add_post(images=[b"x"])
    with time_machine.travel(datetime.now(UTC), tick=True) as clock:
        make_source(fake_bluesky, tls_ca).search(hashtag="sunset")
        clock.shift(timedelta(days=120))  # both tokens have expired

        page = make_source(fake_bluesky, tls_ca).search(hashtag="sunset")

    assert len(page.posts) == 1
    assert [r.status for r in fake_bluesky.session_requests("refresh")] == [400]
    assert len(fake_bluesky.session_requests("create")) == 2


def test_a_revoked_session_is_replaced(fake_bluesky, tls_ca):
    fake_bluesky.add_post(images=[b"x"])
    make_source(fake_bluesky, tls_ca).search(hashtag="sunset")
    fake_bluesky.access_tokens.clear()  # the service forgot it (revoked app password, restart)

    page = make_source(fake_bluesky, tls_ca).search(hashtag="sunset")

    assert len(page.posts) == 1
    assert len(fake_bluesky.session_requests("create")) == 2


def test_a_wrong_app_password_names_the_settings(fake_bluesky, tls_ca):
    with pytest.raises(AuthFailed) as refused:
        make_source(fake_bluesky, tls_ca, app_password="wrong-pass-word-1234").search(hashtag="sunset")

    message = str(refused.value)
    assert f"could not sign in as {fake_bluesky.handle}" in message
    assert "EVERHASH_BLUESKY_APP_PASSWORD" in message and "wrong-pass" not in message
    assert fake_bluesky.search_requests() == []


@time_machine.travel(datetime(2026, 11, 25, 10, 0, tzinfo=UTC), tick=False)
def test_a_429_gives_the_reset_time_and_no_request_is_made_before_it(fake_bluesky, tls_ca):
    fake_bluesky.add_post(images=[b"x"])
    source = make_source(fake_bluesky, tls_ca)
    source.search(hashtag="sunset")
    fake_bluesky.fail_next("429", reset=datetime(2026, 11, 25, 10, 3, tzinfo=UTC).timestamp())

    with pytest.raises(RateLimited) as limited:
        source.search(hashtag="sunset")
    with pytest.raises(RateLimited):
        source.search(hashtag="sunset")

    assert limited.value.reset_at == datetime(2026, 11, 25, 10, 3, tzinfo=UTC)
    assert len(fake_bluesky.search_requests()) == 2


def test_a_server_error_is_retried(fake_bluesky, tls_ca):
    fake_bluesky.add_post(images=[b"x"])
    source = make_source(fake_bluesky, tls_ca)
    source.search(hashtag="sunset")
    fake_bluesky.fail_next("500")
    sleeps: list[float] = []
    source.retry.sleep = sleeps.append

    assert len(source.search(hashtag="sunset").posts) == 1
    assert len(sleeps) == 1


@pytest.mark.parametrize("kind", ["garbage", "malformed_json"])
def test_a_malformed_page_fails_without_moving_on(fake_bluesky, tls_ca, kind):
    fake_bluesky.add_post(images=[b"x"])
    source = make_source(fake_bluesky, tls_ca)
    source.search(hashtag="sunset")
    fake_bluesky.fail_next(kind)

    with pytest.raises(SourceError, match="could not be read"):
        source.search(hashtag="sunset")


def test_the_service_down_fails_with_a_plain_message(fake_bluesky, tls_ca):
    fake_bluesky.down = True
    sleeps: list[float] = []

    with pytest.raises(SourceError, match=r"Could not reach 127\.0\.0\.1"):
        make_source(fake_bluesky, tls_ca, sleeps).search(hashtag="sunset")
    assert len(sleeps) == 2


def test_an_answer_trickling_in_is_cut_at_the_total_deadline_and_retried(fake_bluesky, tls_ca):
    uri = fake_bluesky.add_post(images=[b"x"])
    source = make_source(fake_bluesky, tls_ca, deadline=1)
    source.search(hashtag="sunset")  # signed in, the connection kept alive for the next request
    # A page of about a kilobyte at one byte per 0.05 s: every read is quick (the 20 s per-read
    # timeout never fires), the whole would take about a minute.
    fake_bluesky.fail_next("drip", interval=0.05)
    sleeps: list[float] = []
    source.retry.sleep = sleeps.append

    started = time.monotonic()
    page = source.search(hashtag="sunset")

    assert time.monotonic() - started < 5
    assert [post.id for post in page.posts] == [uri]  # the retry read the whole page
    assert len(fake_bluesky.search_requests()) == 3 and len(sleeps) == 1


def test_a_service_that_only_trickles_fails_with_the_deadline_named(fake_bluesky, tls_ca):
    fake_bluesky.add_post(images=[b"x"])
    source = make_source(fake_bluesky, tls_ca, deadline=1)
    source.search(hashtag="sunset")
    fake_bluesky.fail_next("drip", times=3, interval=0.05)

    with pytest.raises(SourceError, match="did not finish answering within 1 seconds"):
        source.search(hashtag="sunset")
