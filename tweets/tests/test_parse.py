"""parse_search_response with hand-written X v2 payloads."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from tweets.sources import RateLimit, SourceError
from tweets.x_api import parse_search_response


def photo(key: str, url: str | None = None, **extra) -> dict:
    media = {"media_key": key, "type": "photo", "width": 1200, "height": 800, **extra}
    media["url"] = url if url is not None else f"https://pbs.twimg.com/media/{key}.jpg"
    return media


def post(post_id: str, *keys: str, author_id: str = "10", **extra) -> dict:
    return {
        "id": post_id,
        "text": f"Post {post_id} #sunset",
        "author_id": author_id,
        "created_at": "2026-11-20T12:34:56.000Z",
        "attachments": {"media_keys": list(keys)},
        "public_metrics": {"like_count": 7, "retweet_count": 1},
        "possibly_sensitive": False,
        **extra,
    }


def payload(*posts: dict, media: list | None = None, users: list | None = None, **meta) -> dict:
    body = {
        "data": list(posts),
        "includes": {
            "media": media if media is not None else [],
            "users": users if users is not None else [{"id": "10", "username": "ada", "name": "Ada Lovelace"}],
        },
        "meta": {"result_count": len(posts), **meta},
    }
    return body


def test_it_joins_a_post_with_its_photos_and_author():
    page = parse_search_response(
        payload(
            post("1900000000000000001", "3_1", "3_2"),
            media=[photo("3_1", alt_text="A red sky"), photo("3_2")],
            newest_id="1900000000000000001",
            oldest_id="1900000000000000001",
            next_token="b26v89c19zqg8o3f",
        )
    )

    assert len(page.posts) == 1
    result = page.posts[0]
    assert result.id == "1900000000000000001"
    assert result.permalink == "https://x.com/ada/status/1900000000000000001"
    assert (result.author_handle, result.author_name) == ("ada", "Ada Lovelace")
    assert result.text == "Post 1900000000000000001 #sunset"
    assert result.like_count == 7
    assert result.posted_at == datetime(2026, 11, 20, 12, 34, 56, tzinfo=UTC)
    assert result.sensitive is False
    assert [p.media_key for p in result.photos] == ["3_1", "3_2"]
    assert result.photos[0].url == "https://pbs.twimg.com/media/3_1.jpg?name=orig"
    assert (result.photos[0].width, result.photos[0].height, result.photos[0].alt_text) == (1200, 800, "A red sky")
    assert page.newest_id == "1900000000000000001"
    assert page.next_token == "b26v89c19zqg8o3f"


@pytest.mark.parametrize("body", [[], "oops", None, 42, b"{}"])
def test_a_payload_that_is_not_a_json_object_is_a_source_error(body):
    with pytest.raises(SourceError, match="not a JSON object"):
        parse_search_response(body)


def test_a_post_whose_author_is_missing_from_includes_is_skipped():
    page = parse_search_response(
        payload(
            post("2", "3_2", author_id="99"),
            post("1", "3_1"),
            media=[photo("3_1"), photo("3_2")],
        )
    )

    assert [p.id for p in page.posts] == ["1"]


def test_an_author_without_a_username_is_skipped():
    page = parse_search_response(payload(post("1", "3_1"), media=[photo("3_1")], users=[{"id": "10", "name": "X"}]))

    assert page.posts == []


def test_a_photo_without_url_is_dropped_and_a_post_left_without_photos_too():
    page = parse_search_response(
        payload(
            post("2", "3_a", "3_b"),
            post("1", "3_c"),
            media=[photo("3_a", url=""), photo("3_b"), {"media_key": "3_c", "type": "photo"}],
        )
    )

    assert [p.id for p in page.posts] == ["2"]
    assert [ph.media_key for ph in page.posts[0].photos] == ["3_b"]


def test_a_post_with_an_unreadable_date_is_skipped_not_the_whole_page():
    page = parse_search_response(
        payload(
            post("3", "3_3", created_at="yesterday"),
            post("2", "3_2", created_at=None),
            post("1", "3_1"),
            media=[photo("3_1"), photo("3_2"), photo("3_3")],
            newest_id="3",
        )
    )

    assert [p.id for p in page.posts] == ["1"]
    assert page.newest_id == "3"


def test_a_date_without_a_timezone_is_read_as_utc():
    page = parse_search_response(payload(post("1", "3_1", created_at="2026-11-20T08:00:00"), media=[photo("3_1")]))

    assert page.posts[0].posted_at == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_videos_and_gif_previews_are_dropped_and_photos_kept():
    gif = {
        "media_key": "16_1",
        "type": "animated_gif",
        "preview_image_url": "https://pbs.twimg.com/tweet_video_thumb/g.jpg",
    }
    video = {"media_key": "7_1", "type": "video", "preview_image_url": "https://pbs.twimg.com/ext_tw_video_thumb/v.jpg"}
    page = parse_search_response(
        payload(
            post("3", "7_1"),
            post("2", "16_1"),
            post("1", "7_1", "3_1", "16_1"),
            media=[gif, video, photo("3_1")],
        )
    )

    assert [p.id for p in page.posts] == ["1"]
    assert [ph.media_key for ph in page.posts[0].photos] == ["3_1"]


def test_a_retweet_is_never_credited_to_the_retweeter():
    page = parse_search_response(
        payload(
            post("2", "3_1", referenced_tweets=[{"type": "retweeted", "id": "1"}]),
            post("1", "3_1", referenced_tweets=[{"type": "quoted", "id": "0"}]),
            media=[photo("3_1")],
        )
    )

    assert [p.id for p in page.posts] == ["1"]


@pytest.mark.parametrize(
    ("url", "original"),
    [
        ("https://pbs.twimg.com/media/Abc.jpg", "https://pbs.twimg.com/media/Abc.jpg?name=orig"),
        ("https://pbs.twimg.com/media/Abc.jpg?name=small", "https://pbs.twimg.com/media/Abc.jpg?name=orig"),
        ("https://pbs.twimg.com/media/Abc.jpg:large", "https://pbs.twimg.com/media/Abc.jpg?name=orig"),
        (
            "https://pbs.twimg.com/media/Abc?format=png&name=900x900",
            "https://pbs.twimg.com/media/Abc?format=png&name=orig",
        ),
        ("https://127.0.0.1:8443/media/a.jpg", "https://127.0.0.1:8443/media/a.jpg?name=orig"),
    ],
)
def test_photo_urls_ask_for_the_original_size(url, original):
    page = parse_search_response(payload(post("1", "3_1"), media=[photo("3_1", url=url)]))

    assert page.posts[0].photos[0].url == original


def test_an_empty_result_has_no_posts_and_no_cursors():
    page = parse_search_response({"meta": {"result_count": 0}})

    assert page.posts == []
    assert page.newest_id is None
    assert page.next_token is None


def test_cursors_come_from_meta_even_when_every_post_is_dropped():
    """Polling must move past posts without photos, or it would fetch them forever."""
    page = parse_search_response(payload(post("5"), newest_id="5", oldest_id="5", next_token="tok"))

    assert page.posts == []
    assert page.newest_id == "5"
    assert page.next_token == "tok"


def test_odd_shapes_do_not_crash_the_parser():
    weird = payload(
        post(
            "2",
            "3_1",
            public_metrics=None,
            referenced_tweets=["retweeted", None],
            attachments={"media_keys": "3_1"},
        ),
        post("1", "3_1", public_metrics={"like_count": "many"}),
        "not a post",
        {"text": "no id"},
        media=[photo("3_1", width="wide", height=None), "junk"],
        users=[{"id": 10, "username": "ada", "name": None}, ["junk"]],
    )
    weird["meta"] = "not a dict"

    page = parse_search_response(weird)

    assert [p.id for p in page.posts] == ["1"]
    assert page.posts[0].like_count == 0
    assert (page.posts[0].photos[0].width, page.posts[0].photos[0].height) == (0, 0)
    assert page.posts[0].author_name == "ada"  # falls back to the handle
    assert page.newest_id == "2"  # no usable meta: the largest post id on the page

    garbage_includes = copy.deepcopy(weird)
    garbage_includes["includes"] = ["media"]
    with pytest.raises(SourceError, match="no 'includes'"):
        parse_search_response(garbage_includes)


def test_post_text_entities_are_unescaped_once():
    page = parse_search_response(payload(post("1", "3_1", text="Salt &amp; pepper &lt;3"), media=[photo("3_1")]))
    assert page.posts[0].text == "Salt & pepper <3"


def test_a_media_key_listed_twice_gives_one_photo():
    page = parse_search_response(payload(post("1", "3_1", "3_1"), media=[photo("3_1")]))

    assert len(page.posts[0].photos) == 1


def test_the_sensitive_flag_and_the_rate_limit_are_kept():
    rate_limit = RateLimit(limit=450, remaining=449, reset_at=datetime(2026, 11, 20, 12, 15, tzinfo=UTC))

    page = parse_search_response(
        payload(post("1", "3_1", possibly_sensitive=True), media=[photo("3_1")]), rate_limit=rate_limit
    )

    assert page.posts[0].sensitive is True
    assert page.rate_limit == rate_limit
    assert parse_search_response({"meta": {}}).rate_limit == RateLimit()


def test_a_handle_cannot_bend_the_permalink():
    page = parse_search_response(
        payload(post("1", "3_1"), media=[photo("3_1")], users=[{"id": "10", "username": "evil/../x?y", "name": "E"}])
    )

    assert page.posts[0].permalink == "https://x.com/evil%2F..%2Fx%3Fy/status/1"
