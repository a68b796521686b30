"""XSource: the real twython client against the loopback HTTPS fake X API."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from everhash.testing.fake_x_api import DEFAULT_BEARER, SEARCH_PATH, FakeXAPI
from tweets.sources import AuthFailed, MediaError, Photo, RateLimited, SourceError, StaleCursor
from tweets.x_api import XSource

RESET_EPOCH = 1_900_000_000  # 2030-03-17T17:46:40Z


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible retry jitter


class UpperBound(random.Random):
    """Jitter that always picks the top of the range, so the exponential part is visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def fake_x(tls_ca):
    with FakeXAPI(tls_ca.server_context(), rate_limit_reset=RESET_EPOCH) as fake:
        yield fake


@pytest.fixture
def sleep():
    return RecordingSleep()


@pytest.fixture
def make_source(fake_x, tls_ca, sleep):
    def make(**kwargs) -> XSource:
        options = {
            "base_url": fake_x.url,
            "bearer_token": DEFAULT_BEARER,
            "ca_bundle": tls_ca.ca_path,
            "timeout": 5,
            "sleep": sleep,
            "rng": seeded(1),
        }
        options.update(kwargs)
        return XSource(**options)

    return make


@pytest.fixture
def source(make_source):
    return make_source()


def one_photo(key: str) -> list[tuple]:
    return [(key, f"https://pbs.twimg.com/media/{key}.jpg", 1600, 900, "")]


# --- Searching ------------------------------------------------------------------


def test_the_first_page_has_the_newest_posts_with_photos_authors_and_permalinks(fake_x, source):
    older = fake_x.add_post(author=("ada", "Ada Lovelace"), photos=one_photo("3_old"), likes=3)
    newer = fake_x.add_post(author=("grace", "Grace Hopper"), photos=one_photo("3_new"), likes=12, sensitive=True)
    fake_x.add_post(tag="cats", photos=one_photo("3_cat"))

    page = source.search(hashtag="sunset")

    assert [p.id for p in page.posts] == [newer, older]
    first = page.posts[0]
    assert first.permalink == f"https://x.com/grace/status/{newer}"
    assert (first.author_handle, first.author_name) == ("grace", "Grace Hopper")
    assert first.like_count == 12
    assert first.sensitive is True
    assert first.posted_at.tzinfo is not None
    assert first.photos[0].media_key == "3_new"
    assert (first.photos[0].width, first.photos[0].height) == (1600, 900)
    assert page.newest_id == newer
    assert page.next_token is None
    assert source.requests_made == 1


def test_the_query_and_fields_are_sent_exactly(fake_x, source):
    fake_x.add_post(photos=one_photo("3_1"))

    source.search(hashtag="#Sunset")

    (request,) = fake_x.search_requests()
    assert request.params == {
        "query": "#Sunset has:images -is:retweet",  # as written: X's search ignores case itself
        "max_results": "100",
        "expansions": "attachments.media_keys,author_id",
        "media.fields": "url,type,width,height,alt_text,preview_image_url",
        "tweet.fields": "created_at,public_metrics,attachments,author_id,possibly_sensitive,referenced_tweets",
        "user.fields": "username,name",
    }


def test_the_bearer_token_is_sent_in_the_authorization_header(fake_x, source):
    source.search(hashtag="sunset")

    (request,) = fake_x.search_requests()
    assert request.headers["authorization"] == f"Bearer {DEFAULT_BEARER}"
    assert request.path == SEARCH_PATH


def test_next_token_pages_through_250_posts_in_three_pages(fake_x, source):
    ids = fake_x.add_posts(250)

    pages = [source.search(hashtag="sunset")]
    while pages[-1].next_token:
        pages.append(source.search(hashtag="sunset", next_token=pages[-1].next_token))

    assert [len(p.posts) for p in pages] == [100, 100, 50]
    seen = [post.id for page in pages for post in page.posts]
    assert seen == list(reversed(ids))  # newest first, every post once
    assert fake_x.search_requests()[1].params["next_token"] == pages[0].next_token
    assert "next_token" not in fake_x.search_requests()[0].params


def test_polling_with_since_id_returns_only_newer_posts(fake_x, source):
    fake_x.add_posts(5)
    newest = source.search(hashtag="sunset").newest_id
    fresh = fake_x.add_posts(2)

    page = source.search(hashtag="sunset", since_id=newest)

    assert [p.id for p in page.posts] == list(reversed(fresh))
    assert page.newest_id == fresh[-1]
    assert fake_x.search_requests()[-1].params["since_id"] == newest
    assert source.search(hashtag="sunset", since_id=page.newest_id).posts == []


def test_a_post_with_four_photos_keeps_all_four(fake_x, source):
    photos = [(f"3_{n}", f"https://pbs.twimg.com/media/p{n}.jpg", 1000 + n, 700, f"photo {n}") for n in range(4)]
    fake_x.add_post(photos=photos)

    (post,) = source.search(hashtag="sunset").posts

    assert [p.media_key for p in post.photos] == ["3_0", "3_1", "3_2", "3_3"]
    assert [p.alt_text for p in post.photos] == ["photo 0", "photo 1", "photo 2", "photo 3"]
    assert [p.width for p in post.photos] == [1000, 1001, 1002, 1003]


def test_videos_and_gifs_are_dropped(fake_x, source):
    fake_x.add_post(videos=["7_1"])
    fake_x.add_post(gifs=["16_1"])
    mixed = fake_x.add_post(photos=one_photo("3_1"), videos=["7_2"], gifs=["16_2"])

    page = source.search(hashtag="sunset")

    assert [p.id for p in page.posts] == [mixed]
    assert [ph.media_key for ph in page.posts[0].photos] == ["3_1"]


def test_a_retweet_is_not_credited_to_the_retweeter(fake_x, source):
    original = fake_x.add_post(author=("ada", "Ada"), photos=one_photo("3_1"))
    fake_x.add_retweet(original, by=("copycat", "Copy Cat"))

    page = source.search(hashtag="sunset")

    assert [(p.id, p.author_handle) for p in page.posts] == [(original, "ada")]
    assert len(fake_x.search_requests()) == 1


def test_photo_urls_ask_for_the_original_size(fake_x, source):
    fake_x.add_post(photos=[("3_1", "https://pbs.twimg.com/media/Abc?format=jpg&name=small")])
    fake_x.add_post(photos=[("3_2", "https://pbs.twimg.com/media/Def.png")])

    urls = [post.photos[0].url for post in source.search(hashtag="sunset").posts]

    assert urls == [
        "https://pbs.twimg.com/media/Def.png?name=orig",
        "https://pbs.twimg.com/media/Abc?format=jpg&name=orig",
    ]


def test_ids_beyond_64_bits_stay_exact_strings(fake_x, source):
    huge = 2**64 + 12345
    fake_x.add_post(id=huge - 1, photos=one_photo("3_1"))
    fake_x.add_post(id=huge, photos=one_photo("3_2"))

    page = source.search(hashtag="sunset")

    assert [p.id for p in page.posts] == [str(huge), str(huge - 1)]
    assert page.newest_id == "18446744073709563961"
    assert page.posts[0].permalink.endswith("/status/18446744073709563961")
    newer = source.search(hashtag="sunset", since_id=str(huge - 1))
    assert [p.id for p in newer.posts] == [str(huge)]


def test_rate_limit_headers_are_read_into_the_page(fake_x, source):
    fake_x.add_post(photos=one_photo("3_1"))

    first = source.search(hashtag="sunset")
    second = source.search(hashtag="sunset")

    assert first.rate_limit.limit == 450
    assert first.rate_limit.remaining == 449
    assert second.rate_limit.remaining == 448
    assert first.rate_limit.reset_at == datetime(2030, 3, 17, 17, 46, 40, tzinfo=UTC)


# --- Failures -------------------------------------------------------------------


def test_a_429_raises_rate_limited_with_the_reset_time_and_is_not_retried(fake_x, source, sleep):
    reset = int((timezone.now() + timedelta(minutes=7)).timestamp())
    fake_x.fail_next("429", reset=reset)

    with pytest.raises(RateLimited) as caught:
        source.search(hashtag="sunset")

    assert caught.value.reset_at == datetime.fromtimestamp(reset, tz=UTC)
    assert "rate limit" in str(caught.value)
    assert len(fake_x.search_requests()) == 1
    assert sleep.delays == []


def test_a_429_without_a_reset_header_waits_fifteen_minutes(fake_x, source):
    fake_x.fail_next("429", reset=None)
    before = timezone.now()

    with pytest.raises(RateLimited) as caught:
        source.search(hashtag="sunset")

    assert before + timedelta(minutes=15) <= caught.value.reset_at <= timezone.now() + timedelta(minutes=15)


def test_a_spent_budget_gives_rate_limited(tls_ca, sleep):
    reset = int((timezone.now() + timedelta(minutes=10)).timestamp())
    with FakeXAPI(tls_ca.server_context(), rate_limit=2, rate_limit_reset=reset) as fake:
        source = XSource(base_url=fake.url, bearer_token=DEFAULT_BEARER, ca_bundle=tls_ca.ca_path, sleep=sleep)
        assert source.search(hashtag="sunset").rate_limit.remaining == 1
        assert source.search(hashtag="sunset").rate_limit.remaining == 0
        with pytest.raises(RateLimited) as caught:
            source.search(hashtag="sunset")

    assert caught.value.reset_at == datetime.fromtimestamp(reset, tz=UTC)


def test_a_reset_time_years_away_is_not_believed(fake_x, source):
    fake_x.fail_next("429", reset=RESET_EPOCH)

    with pytest.raises(RateLimited) as caught:
        source.search(hashtag="sunset")

    assert caught.value.reset_at <= timezone.now() + timedelta(minutes=15)


def test_a_500_is_retried_after_a_jittered_backoff_and_then_succeeds(fake_x, make_source, sleep):
    fake_x.add_post(photos=one_photo("3_1"))
    fake_x.fail_next("500")
    source = make_source(rng=seeded(42))

    page = source.search(hashtag="sunset")

    assert len(page.posts) == 1
    assert source.requests_made == 2
    assert len(fake_x.search_requests()) == 2
    assert sleep.delays == [seeded(42).uniform(0, 1.0)]
    assert 0 <= sleep.delays[0] <= 1.0


def test_backoff_doubles_each_time_up_to_the_cap(fake_x, make_source, sleep):
    fake_x.fail_next("503", times=4)
    source = make_source(max_retries=4, rng=UpperBound(), backoff_base=1.0, backoff_cap=5.0)

    source.search(hashtag="sunset")

    assert sleep.delays == [1.0, 2.0, 4.0, 5.0]
    assert source.requests_made == 5


def test_a_503_that_lasts_gives_up_after_max_retries(fake_x, source, sleep):
    fake_x.fail_next("503", times=10)

    with pytest.raises(SourceError) as caught:
        source.search(hashtag="sunset")

    assert type(caught.value) is SourceError
    assert str(caught.value) == "X is having trouble (503 Service Unavailable); will try again."
    assert len(fake_x.search_requests()) == 4  # one try and three retries
    assert len(sleep.delays) == 3
    assert all(0 <= delay <= limit for delay, limit in zip(sleep.delays, [1, 2, 4], strict=True))


def test_an_html_error_page_from_a_proxy_is_retried(fake_x, source, sleep):
    fake_x.fail_next("502")
    fake_x.add_post(photos=one_photo("3_1"))

    assert len(source.search(hashtag="sunset").posts) == 1
    assert len(sleep.delays) == 1


def test_a_timeout_is_retried_then_reported(fake_x, make_source, sleep):
    fake_x.fail_next("timeout", times=2, delay=3)
    source = make_source(timeout=0.3, max_retries=1)

    with pytest.raises(SourceError, match=r"X did not answer within 0\.3 seconds"):
        source.search(hashtag="sunset")

    assert len(fake_x.search_requests()) == 2
    assert len(sleep.delays) == 1


def test_a_timeout_then_an_answer_gives_the_page(fake_x, make_source, sleep):
    fake_x.add_post(photos=one_photo("3_1"))
    fake_x.fail_next("timeout", delay=10)
    source = make_source(timeout=2)  # the answer of the retry, on a loaded machine, comes well within it

    page = source.search(hashtag="sunset")

    assert len(page.posts) == 1
    assert source.requests_made == 2


def test_a_dropped_connection_is_retried(fake_x, source, sleep):
    fake_x.add_post(photos=one_photo("3_1"))
    fake_x.fail_next("disconnect")

    page = source.search(hashtag="sunset")

    assert len(page.posts) == 1
    assert source.requests_made == 2
    assert len(fake_x.search_requests()) == 2


def test_a_400_on_since_id_is_a_stale_cursor(fake_x, source, sleep):
    fake_x.fail_next("400")

    with pytest.raises(StaleCursor):
        source.search(hashtag="sunset", since_id="1800000000000000000")

    assert len(fake_x.search_requests()) == 1
    assert sleep.delays == []


def test_another_400_is_an_error_without_retry(fake_x, source, sleep):
    with pytest.raises(SourceError) as caught:
        source.search(hashtag="sunset", next_token="not-a-token-x-gave")

    assert type(caught.value) is SourceError
    assert str(caught.value) == (
        "X rejected the search (400 Invalid Request: One or more parameters to your request was invalid.; "
        "The `next_token` query parameter value [not-a-token-x-gave] is not valid.)."
    )
    assert len(fake_x.search_requests()) == 1
    assert sleep.delays == []


def test_a_refused_token_raises_auth_failed_with_a_clear_message(fake_x, make_source, sleep):
    source = make_source(bearer_token="expired-token")

    with pytest.raises(AuthFailed) as caught:
        source.search(hashtag="sunset")

    assert str(caught.value) == "X refused the bearer token (401 Unauthorized): check EVERHASH_X_BEARER_TOKEN."
    assert fake_x.search_requests()[0].headers["authorization"] == "Bearer expired-token"
    assert len(fake_x.search_requests()) == 1
    assert sleep.delays == []


def test_a_403_raises_auth_failed(fake_x, source):
    fake_x.fail_next("403")

    with pytest.raises(AuthFailed, match=r"X refused the search \(403 Forbidden\)"):
        source.search(hashtag="sunset")


def test_malformed_json_is_a_source_error(fake_x, source):
    fake_x.fail_next("malformed_json")

    with pytest.raises(SourceError) as caught:
        source.search(hashtag="sunset")

    assert str(caught.value) == "X sent a response that is not valid JSON."


def test_json_that_is_not_an_object_is_a_source_error(fake_x, source):
    fake_x.fail_next("not_an_object")

    with pytest.raises(SourceError, match="not a JSON object"):
        source.search(hashtag="sunset")


def test_missing_includes_fails_the_page_so_the_cursor_does_not_skip_its_posts(fake_x, source):
    fake_x.add_post(photos=one_photo("3_1"))
    fake_x.fail_next("missing_includes")

    with pytest.raises(SourceError, match="no 'includes'"):
        source.search(hashtag="sunset")


def test_an_untrusted_certificate_is_reported_without_retry(fake_x, make_source, sleep):
    source = make_source(ca_bundle=None)  # the system CAs do not know the throwaway CA

    with pytest.raises(SourceError, match="Could not verify X's HTTPS certificate"):
        source.search(hashtag="sunset")

    assert sleep.delays == []


def test_a_hashtag_cannot_smuggle_query_operators(fake_x, source):
    with pytest.raises(SourceError, match="not a hashtag"):
        source.search(hashtag="sunset OR from:someone")

    assert fake_x.requests == []


# --- Downloading ----------------------------------------------------------------


@pytest.fixture
def media_settings(settings, tls_ca):
    """The fake serves the photos too: 127.0.0.1 is admitted by setting, 127.0.0.2 stays blocked."""
    settings.EVERHASH_MEDIA_HOSTS = ["127.0.0.1", "127.0.0.2"]
    settings.EVERHASH_ALLOW_PRIVATE_ADDRESSES = ["127.0.0.1"]
    settings.EVERHASH_CA_BUNDLE = tls_ca.ca_path
    return settings


def test_download_fetches_the_original_photo_found_by_search(fake_x, source, media_settings):
    url = fake_x.add_image("sky.jpg", b"\xff\xd8 pretend jpeg")
    fake_x.add_post(photos=[("3_1", url)])
    (post,) = source.search(hashtag="sunset").posts

    data = source.download(post.photos[0])

    assert data == b"\xff\xd8 pretend jpeg"
    assert fake_x.requests[-1].path == "/media/sky.jpg"
    assert fake_x.requests[-1].params == {"name": "orig"}
    assert "authorization" not in fake_x.requests[-1].headers  # the bearer token stays with the API


def test_a_missing_photo_is_a_media_error(fake_x, source, media_settings):
    photo = Photo(media_key="3_1", url=f"{fake_x.url}/media/gone.jpg", width=1, height=1)

    with pytest.raises(MediaError, match="HTTP 404"):
        source.download(photo)


def test_a_photo_on_a_private_address_is_refused_as_a_media_error(fake_x, source, media_settings):
    photo = Photo(media_key="3_1", url=f"https://127.0.0.2:{fake_x.port}/media/sky.jpg", width=1, height=1)

    with pytest.raises(MediaError, match="private or reserved address"):
        source.download(photo)

    assert not any(r.path.startswith("/media/") for r in fake_x.requests)


def test_a_photo_on_an_unknown_host_is_refused_as_a_media_error(source, media_settings):
    photo = Photo(media_key="3_1", url="https://media.example.net/a.jpg", width=1, height=1)

    with pytest.raises(MediaError, match="not an allowed media host"):
        source.download(photo)


# --- Configuration --------------------------------------------------------------


def test_a_plain_http_api_url_is_refused():
    with pytest.raises(SourceError, match="must be an https:// address"):
        XSource(base_url="http://api.x.com", bearer_token="t")


def test_a_missing_token_is_an_auth_failure():
    with pytest.raises(AuthFailed, match="EVERHASH_X_BEARER_TOKEN"):
        XSource(base_url="https://api.x.com", bearer_token="")


def test_from_settings_reads_the_url_token_and_ca_bundle(settings, fake_x, tls_ca):
    settings.EVERHASH_X_API_URL = fake_x.url
    settings.EVERHASH_X_BEARER_TOKEN = DEFAULT_BEARER
    settings.EVERHASH_CA_BUNDLE = tls_ca.ca_path
    fake_x.add_post(photos=one_photo("3_1"))

    source = XSource.from_settings()

    assert source.name == "x"
    assert len(source.search(hashtag="sunset").posts) == 1
    assert DEFAULT_BEARER not in repr(source)


def test_an_answer_trickling_in_is_cut_at_the_total_deadline(fake_x, make_source, sleep):
    import time

    # 27 bytes at one per 0.3 s: every read is quick (the 5 s timeout never fires), the whole is 8 s.
    fake_x.fail_next("drip", interval=0.3)
    source = make_source(deadline=1, max_retries=0)

    started = time.monotonic()
    with pytest.raises(SourceError, match="did not finish answering within 1 seconds"):
        source.search(hashtag="sunset")

    assert time.monotonic() - started < 3
    assert source.requests_made == 1


def test_a_cut_request_is_retried_and_the_next_answer_is_read(fake_x, make_source, sleep):
    fake_x.add_post(photos=one_photo("3_1"))
    fake_x.fail_next("drip", interval=0.3)
    source = make_source(deadline=1)

    page = source.search(hashtag="sunset")

    assert [post.photos[0].media_key for post in page.posts] == ["3_1"]
    assert source.requests_made == 2 and len(sleep.delays) == 1
