"""The Mastodon source: the real Mastodon.py client against two loopback HTTPS instances that
federate statuses (fake_mastodon.py), and media downloaded from their media hosts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from everhash.testing.builders import photo_bytes
from tweets.mastodon_api import MastodonSource, mastodon_sources, status_text
from tweets.sources import AuthFailed, MediaError, RateLimited, SourceError

pytestmark = pytest.mark.usefixtures("social_settings")


def make_source(instance, tls_ca, sleeps: list | None = None, **kwargs) -> MastodonSource:
    return MastodonSource(
        base_url=instance.url, ca_bundle=tls_ca.ca_path, sleep=(sleeps if sleeps is not None else []).append, **kwargs
    )


@pytest.fixture
def first(fediverse):
    return fediverse.instances[0]


@pytest.fixture
def second(fediverse):
    return fediverse.instances[1]


def test_it_pages_to_older_statuses_through_the_link_header(first, tls_ca):
    uris = first.posts(45)
    source = make_source(first, tls_ca)

    newest = source.search(hashtag="#Sunset")
    older = source.search(hashtag="sunset", next_token=newest.next_token)

    assert [p.id for p in newest.posts + older.posts] == list(reversed(uris))
    assert (len(newest.posts), len(older.posts)) == (40, 5)
    assert newest.next_token == first.local_id(uris[5])  # the Link header's max_id: the oldest on the page
    assert older.next_token is None  # a short page has no rel="next"
    calls = first.timeline_requests()
    assert calls[0].params == {"limit": ["40"], "only_media": ["1"]}
    assert calls[1].params["max_id"] == [newest.next_token]


def test_polling_reads_only_newer_statuses_and_a_rerun_reads_nothing_old(first, tls_ca):
    first.posts(3)
    source = make_source(first, tls_ca)
    cursor = source.search(hashtag="sunset").newest_id

    nothing = source.search(hashtag="sunset", since_id=cursor)
    fresh = first.posts(2)
    page = source.search(hashtag="sunset", since_id=cursor)

    assert nothing.posts == [] and nothing.next_token is None
    assert [p.id for p in page.posts] == list(reversed(fresh))
    assert page.newest_id == first.local_id(fresh[-1])
    assert first.timeline_requests()[-1].params["since_id"] == [cursor]


def test_more_new_statuses_than_a_page_continue_older_without_passing_the_cursor(first, tls_ca):
    first.posts(2)
    source = make_source(first, tls_ca)
    cursor = source.search(hashtag="sunset").newest_id
    fresh = first.posts(42)

    top = source.search(hashtag="sunset", since_id=cursor)
    rest = source.search(hashtag="sunset", since_id=cursor, next_token=top.next_token)

    assert [p.id for p in top.posts + rest.posts] == list(reversed(fresh))
    assert rest.next_token is None
    assert first.timeline_requests()[-1].params["since_id"] == [cursor]


def test_only_image_attachments_are_kept(first, tls_ca):
    mixed = first.post(images=[b"one", b"two"], gifv=1, video=1)
    first.post(gifv=1)
    first.post(video=2)

    page = make_source(first, tls_ca).search(hashtag="sunset")

    assert [p.id for p in page.posts] == [mixed]
    assert len(page.posts[0].photos) == 2
    assert all(photo.url.endswith(".jpg") for photo in page.posts[0].photos)


def test_sensitive_media_and_content_warnings_mark_the_post_sensitive(first, tls_ca):
    plain = first.post(images=[b"a"])
    flagged = first.post(images=[b"b"], sensitive=True)
    warned = first.post(images=[b"c"], spoiler_text="spoilers for the finale")

    posts = {p.id: p for p in make_source(first, tls_ca).search(hashtag="sunset").posts}

    assert not posts[plain].sensitive
    assert posts[flagged].sensitive
    assert posts[warned].sensitive


def test_a_post_keeps_its_author_link_text_alt_text_and_likes(first, tls_ca):
    uri = first.post(
        user="ada",
        display_name="Ada L.",
        text="Tea &amp; cake<br>at dusk",
        images=[(b"img", "A sunset over the bay", 1600, 900)],
        favourites=17,
    )

    post = make_source(first, tls_ca).search(hashtag="sunset").posts[0]

    assert post.id == uri
    assert post.author_handle == f"ada@{first.netloc}"
    assert post.author_name == "Ada L."
    assert post.permalink == f"https://{first.netloc}/@ada/1"
    assert post.text == "Tea & cake\nat dusk #sunset"
    assert post.like_count == 17
    assert post.posted_at.tzinfo is not None and post.posted_at.utcoffset() == timedelta(0)
    assert (post.photos[0].width, post.photos[0].height, post.photos[0].alt_text) == (
        1600,
        900,
        "A sunset over the bay",
    )


def test_a_status_federated_to_two_instances_is_one_post(first, second, tls_ca):
    image = photo_bytes("chelsea.png")
    shared = first.post(user="ada", images=[image], favourites=3)
    first.post(user="ada", images=[b"only here"])
    second.receive(shared)
    local = second.post(user="bob", images=[b"only there"])

    here = make_source(first, tls_ca).search(hashtag="sunset").posts
    there_source = make_source(second, tls_ca)
    there = there_source.search(hashtag="sunset").posts

    from_first = next(p for p in here if p.id == shared)
    from_second = next(p for p in there if p.id == shared)
    assert first.local_id(shared) != second.local_id(shared)  # instance-local ids differ...
    assert from_first.author_handle == from_second.author_handle == f"ada@{first.netloc}"  # ...the post does not
    assert from_first.permalink == from_second.permalink
    assert [p.media_key for p in from_first.photos] == [p.media_key for p in from_second.photos]
    assert from_first.photos[0].url != from_second.photos[0].url  # the second serves its cached copy
    assert there_source.download(from_second.photos[0]) == image
    assert second.media.hits["/cache/system/media/1/0.jpg"] == 1
    assert [p.id for p in there] == [local, shared]
    assert next(p for p in there if p.id == local).author_handle == f"bob@{second.netloc}"


def test_media_comes_from_any_public_host_but_the_address_guard_still_applies(first, tls_ca, settings):
    image = photo_bytes("coffee.png")
    first.post(images=[image])
    source = make_source(first, tls_ca)
    photo = source.search(hashtag="sunset").posts[0].photos[0]

    assert source.download(photo) == image  # 127.0.0.1 is not in EVERHASH_MEDIA_HOSTS, and needs not be

    settings.EVERHASH_ALLOW_PRIVATE_ADDRESSES = []
    with pytest.raises(MediaError) as refused:
        source.download(photo)
    assert refused.value.reason == "private_address"


def test_an_instance_that_is_down_fails_alone_after_retries(first, second, tls_ca):
    first.posts(1)
    second.posts(1)
    first.down = True
    sleeps: list[float] = []

    with pytest.raises(SourceError, match=rf"Could not reach {first.netloc}"):
        make_source(first, tls_ca, sleeps, max_retries=2).search(hashtag="sunset")

    assert len(sleeps) == 2
    assert len(make_source(second, tls_ca).search(hashtag="sunset").posts) == 1


def test_a_server_error_is_retried_and_then_succeeds(first, tls_ca):
    first.posts(1)
    first.fail_next("503")
    sleeps: list[float] = []

    source = make_source(first, tls_ca, sleeps)
    page = source.search(hashtag="sunset")

    assert len(page.posts) == 1 and len(sleeps) == 1
    assert source.requests_made == 3  # /api/v2/instance, the 503, the answer
    assert page.posts_read == 1


@time_machine.travel(datetime(2026, 11, 25, 10, 0, tzinfo=UTC), tick=False)
def test_a_429_gives_the_reset_time_and_no_request_is_made_before_it(first, tls_ca):
    first.posts(1)
    first.fail_next("429", reset=datetime(2026, 11, 25, 10, 4, 30, tzinfo=UTC))
    source = make_source(first, tls_ca)

    with pytest.raises(RateLimited) as limited:
        source.search(hashtag="sunset")
    calls = len(first.timeline_requests())
    with pytest.raises(RateLimited):
        source.search(hashtag="sunset")

    assert limited.value.reset_at == datetime(2026, 11, 25, 10, 4, 30, tzinfo=UTC)
    assert "10:04 UTC" in str(limited.value)
    assert len(first.timeline_requests()) == calls == 1


@time_machine.travel(datetime(2026, 11, 25, 10, 0, tzinfo=UTC), tick=False)
def test_retry_after_wins_over_the_rate_limit_reset(first, tls_ca):
    first.fail_next("429", reset=datetime(2026, 11, 25, 10, 4, tzinfo=UTC), retry_after=90)

    with pytest.raises(RateLimited) as limited:
        make_source(first, tls_ca).search(hashtag="sunset")

    assert limited.value.reset_at == datetime(2026, 11, 25, 10, 1, 30, tzinfo=UTC)


def test_the_last_request_of_a_window_stops_the_next_one(first, tls_ca):
    first.posts(1)
    first.remaining = 1
    source = make_source(first, tls_ca)

    assert source.search(hashtag="sunset").rate_limit.remaining == 0
    with pytest.raises(RateLimited):
        source.search(hashtag="sunset")
    assert len(first.timeline_requests()) == 1


def test_a_restricted_instance_names_the_setting_that_fixes_it(fediverse, tls_ca, settings):
    from everhash.testing.fake_mastodon import FakeMastodon

    with FakeMastodon(tls_ca.server_context(), fediverse, restricted=True, token="s3cret") as locked:
        locked.posts(1)
        netloc = locked.netloc
        with pytest.raises(AuthFailed) as refused:
            make_source(locked, tls_ca).search(hashtag="sunset")
        with pytest.raises(AuthFailed) as wrong:
            make_source(locked, tls_ca, access_token="nope").search(hashtag="sunset")
        settings.EVERHASH_MASTODON_TOKENS = {locked.netloc: "s3cret"}
        settings.EVERHASH_MASTODON_INSTANCES = [locked.url]
        (configured,) = mastodon_sources()
        page = configured.search(hashtag="sunset")

    assert "422" in str(refused.value) and f"{netloc}=<access token>" in str(refused.value)
    assert "EVERHASH_MASTODON_TOKENS" in str(refused.value)
    assert "refused the token" in str(wrong.value) and "nope" not in str(wrong.value)
    assert len(page.posts) == 1
    assert locked.timeline_requests()[-1].headers["authorization"] == "Bearer s3cret"


@pytest.mark.parametrize("kind", ["malformed_json", "not_a_list"])
def test_a_malformed_page_fails_without_retrying(first, tls_ca, kind):
    first.posts(1)
    first.fail_next(kind)
    sleeps: list[float] = []

    with pytest.raises(SourceError, match="not valid JSON|not a list of statuses"):
        make_source(first, tls_ca, sleeps).search(hashtag="sunset")
    assert sleeps == []


def test_no_instances_configured_means_no_mastodon(settings):
    settings.EVERHASH_MASTODON_INSTANCES = []
    assert mastodon_sources() == []


def test_status_html_becomes_plain_text():
    html = '<p>One &lt;two&gt;</p><p>Three <a href="https://x/tags/t">#<span>t</span></a></p>'
    assert status_text(html) == "One <two>\nThree #t"
    assert status_text(None) == ""


def test_an_answer_trickling_in_is_cut_at_the_total_deadline_and_retried(first, tls_ca):
    uris = first.posts(1)
    # A page of about a kilobyte at one byte per 0.05 s: every read is quick (the 20 s per-read
    # timeout never fires), the whole would take about a minute.
    first.fail_next("drip", interval=0.05)
    sleeps: list[float] = []
    source = make_source(first, tls_ca, sleeps, deadline=1)

    started = time.monotonic()
    page = source.search(hashtag="sunset")

    assert time.monotonic() - started < 5
    assert [post.id for post in page.posts] == uris  # the retry read the whole page
    assert len(first.timeline_requests()) == 2 and len(sleeps) == 1


def test_a_source_that_only_trickles_fails_with_the_deadline_named(first, tls_ca):
    first.posts(1)
    first.fail_next("drip", times=3, interval=0.05)

    with pytest.raises(SourceError, match="did not finish answering within 1 seconds"):
        make_source(first, tls_ca, deadline=1).search(hashtag="sunset")
