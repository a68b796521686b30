"""The pictures API: an album's pictures, most liked and authors, and a picture by id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext

from albums.models import Album
from albums.services import pictures_changed
from everhash.testing.builders import RENDITIONS, add_pictures, make_album, make_picture
from everhash.testing.fixtures import ROLES
from pictures.models import Picture
from pictures.moderation import hide


def ids(response) -> list[int]:
    return [picture["id"] for picture in response.json()["results"]]


def walk(call, url: str, role: str = "anonymous") -> list[list[int]]:
    """Follow `next` links from `url`; the ids of each page."""
    pages = []
    while url:
        body = call(role, "get", url).json()
        pages.append([picture["id"] for picture in body["results"]])
        url = body["next"]
    return pages


# --- The permission matrix ------------------------------------------------------------------------

# (method, path, expected status for anonymous, stranger, owner, staff); {pk} is a picture of the album.
MATRIX = [
    *[
        (method, f"/api/v1/albums/{{album}}/{endpoint}/{{key}}", statuses)
        for endpoint in ("pictures", "popular", "authors")
        for method, statuses in (
            ("get", {"sunset": (200,) * 4, "hush": (404, 404, 200, 200), "hush+key": (200,) * 4}),
            ("post", {"sunset": (401, 405, 405, 405), "hush": (401, 405, 405, 405)}),
            ("patch", {"sunset": (401, 405, 405, 405)}),
            ("delete", {"sunset": (401, 405, 405, 405), "hush+key": (401, 405, 405, 405)}),
        )
    ],
    (
        "get",
        "/api/v1/pictures/{pk}/{key}",
        {"sunset": (200,) * 4, "hush": (404, 404, 200, 200), "hush+key": (200,) * 4},
    ),
    ("patch", "/api/v1/pictures/{pk}/{key}", {"sunset": (401, 405, 405, 405)}),
    ("put", "/api/v1/pictures/{pk}/{key}", {"sunset": (401, 405, 405, 405)}),
    ("delete", "/api/v1/pictures/{pk}/{key}", {"sunset": (401, 405, 405, 405), "hush+key": (401, 405, 405, 405)}),
    ("post", "/api/v1/pictures/", {"sunset": (404, 404, 404, 404)}),  # there is no list of all pictures
]


@pytest.mark.parametrize(
    ("role", "method", "path", "case", "expected"),
    [
        pytest.param(role, method, path, case, statuses[i], id=f"{method.upper()} {path} {case} as {role}")
        for method, path, cases in MATRIX
        for case, statuses in cases.items()
        for i, role in enumerate(ROLES)
    ],
)
def test_each_method_answers_each_kind_of_caller_as_the_matrix_says(
    call, album, hush, role, method, path, case, expected
):
    target = album if case == "sunset" else hush
    picture = make_picture(album=target)
    url = path.format(album=target.hashtag, pk=picture.pk, key=f"?key={target.secret}" if "key" in case else "")
    response = call(role, method, url, {"like_count": 0} if method != "get" else None)
    assert response.status_code == expected, response.content
    assert response["Content-Type"].startswith("application/json")
    assert Picture.objects.filter(pk=picture.pk, like_count=picture.like_count).exists()


# --- An album's pictures --------------------------------------------------------------------------


def test_the_pictures_are_the_visible_ones_newest_first(call, album):
    old = make_picture(album=album)
    new = make_picture(album=album)
    make_picture(album=album, status=Picture.Status.HIDDEN)
    make_picture(album=album, status=Picture.Status.PENDING)
    make_picture(album=make_album(owner=album.owner, hashtag="elsewhere"))
    assert ids(call("anonymous", "get", "/api/v1/albums/sunset/pictures/")) == [new.pk, old.pk]


def test_hidden_and_pending_pictures_never_appear_even_to_the_owner_or_staff(call, album):
    make_picture(album=album, status=Picture.Status.HIDDEN)
    make_picture(album=album, status=Picture.Status.PENDING)
    for role in ("owner", "staff"):
        for endpoint in ("pictures", "popular"):
            response = call(role, "get", f"/api/v1/albums/sunset/{endpoint}/")
            body = response.json()
            assert (body["results"] if endpoint == "pictures" else body) == []
        assert call(role, "get", "/api/v1/albums/sunset/authors/").json()["count"] == 0


def test_a_picture_carries_its_post_author_times_sizes_and_absolute_image_urls(call, album):
    picture = make_picture(
        album=album,
        source="x",
        post_id="1850000000000000001",
        permalink="https://x.com/ann/status/1850000000000000001",
        author_handle="ann",
        author_name="Ann Example",
        like_count=42,
        posted_at=datetime(2026, 11, 1, 12, 30, tzinfo=UTC),
        added_at=datetime(2026, 11, 2, 8, 0, 5, 123456, tzinfo=UTC),
        alt_text="A red sky",
        width=4000,
        height=3000,
        original_key="originals/ab/abc.jpg",
        renditions=RENDITIONS,
    )
    data = call("anonymous", "get", "/api/v1/albums/sunset/pictures/").json()["results"][0]
    assert data == {
        "id": picture.pk,
        "url": f"http://testserver/api/v1/pictures/{picture.pk}/",
        "album": "sunset",
        "source": "x",
        "post_id": "1850000000000000001",
        "permalink": "https://x.com/ann/status/1850000000000000001",
        "author_handle": "ann",
        "author_name": "Ann Example",
        "like_count": 42,
        "posted_at": "2026-11-01T12:30:00Z",
        "added_at": "2026-11-02T08:00:05.123456Z",
        "alt_text": "A red sky",
        "width": 4000,
        "height": 3000,
        # The original has no public address: its access-checked view (pictures.views.original).
        "original": {"url": f"http://testserver/picture/{picture.pk}/original", "width": 4000, "height": 3000},
        "renditions": {
            name: {"url": f"http://testserver/media/{r['key']}", "width": r["width"], "height": r["height"]}
            for name, r in RENDITIONS.items()
        },
    }
    assert call("anonymous", "get", data["url"]).json() == data


def one_rendition(key: str) -> dict:
    return {"thumb": {"key": key, "width": 10, "height": 10}}


def test_image_urls_from_an_absolute_storage_stay_as_they_are(call, album, settings):
    settings.MEDIA_URL = "https://cdn.example.com/media/"
    make_picture(album=album, renditions=one_rendition("renditions/x.jpg"))
    data = call("anonymous", "get", "/api/v1/albums/sunset/pictures/").json()["results"][0]
    assert data["renditions"]["thumb"]["url"] == "https://cdn.example.com/media/renditions/x.jpg"


@pytest.mark.parametrize("key", ["renditions/ab/abc.jpg", "odd name/ça va?#1.jpg", "/leading/slash.jpg"])
def test_image_urls_are_what_the_storage_gives_made_absolute(call, album, key):
    make_picture(album=album, renditions=one_rendition(key))
    data = call("anonymous", "get", "/api/v1/albums/sunset/pictures/").json()["results"][0]
    assert data["renditions"]["thumb"]["url"] == "http://testserver" + default_storage.url(key)


def test_following_next_visits_every_picture_once_in_order(call, album):
    pictures = add_pictures(album, 7)
    pages = walk(call, "/api/v1/albums/sunset/pictures/?page_size=3")
    assert pages == [[p.pk for p in reversed(pictures)][i : i + 3] for i in (0, 3, 6)]


def test_previous_goes_back_to_the_page_before(call, album):
    add_pictures(album, 7)
    first = call("anonymous", "get", "/api/v1/albums/sunset/pictures/?page_size=3").json()
    assert first["previous"] is None
    second = call("anonymous", "get", first["next"]).json()
    back = call("anonymous", "get", second["previous"]).json()
    assert [p["id"] for p in back["results"]] == [p["id"] for p in first["results"]]
    assert back["previous"] is None
    assert back["next"] is not None


def test_pictures_added_while_paging_do_not_shift_the_pages(call, album):
    pictures = add_pictures(album, 6)
    first = call("anonymous", "get", "/api/v1/albums/sunset/pictures/?page_size=3").json()
    make_picture(album=album)  # newer than everything: belongs before page one
    second = call("anonymous", "get", first["next"]).json()
    assert [p["id"] for p in second["results"]] == [p.pk for p in reversed(pictures[:3])]


@pytest.mark.parametrize(
    ("ordering", "key"),
    [
        ("newest", lambda p: (-p.added_at.timestamp(), -p.pk)),
        ("oldest", lambda p: (p.added_at.timestamp(), p.pk)),
        ("most_liked", lambda p: (-p.like_count, -p.added_at.timestamp(), -p.pk)),
        ("newest_posted", lambda p: (-p.posted_at.timestamp(), -p.pk)),
        ("oldest_posted", lambda p: (p.posted_at.timestamp(), p.pk)),
    ],
)
def test_each_ordering_pages_through_every_picture_exactly_once_even_with_ties(call, album, ordering, key):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    # Many equal like counts, posted and added times: the id settles every tie.
    pictures = add_pictures(album, 11)
    for index, picture in enumerate(pictures):
        picture.like_count = index % 3
        picture.posted_at = start + timedelta(hours=index % 2)
        picture.added_at = start + timedelta(hours=index % 4)
    Picture.objects.bulk_update(pictures, ["like_count", "posted_at", "added_at"])
    pages = walk(call, f"/api/v1/albums/sunset/pictures/?ordering={ordering}&page_size=4")
    assert [len(page) for page in pages] == [4, 4, 3]
    assert [pk for page in pages for pk in page] == [p.pk for p in sorted(pictures, key=key)]


def test_previous_links_are_exact_in_an_ordering_with_ties(call, album):
    pictures = add_pictures(album, 9, like_count=5)
    url = "/api/v1/albums/sunset/pictures/?ordering=most_liked&page_size=2"
    forward = []
    while url:
        body = call("anonymous", "get", url).json()
        forward.append(body)
        url = body["next"]
    backward = [[p["id"] for p in call("anonymous", "get", page["previous"]).json()["results"]] for page in forward[1:]]
    assert backward == [[p["id"] for p in page["results"]] for page in forward[:-1]]
    assert len({p["id"] for page in forward for p in page["results"]}) == len(pictures)


def test_a_page_emptied_by_deletions_still_links_back(call, album):
    pictures = add_pictures(album, 4)
    first = call("anonymous", "get", "/api/v1/albums/sunset/pictures/?page_size=2").json()
    Picture.objects.filter(pk__in=[pictures[0].pk, pictures[1].pk]).delete()
    empty = call("anonymous", "get", first["next"]).json()
    assert empty["results"] == [] and empty["next"] is None
    back = call("anonymous", "get", empty["previous"]).json()
    assert [p["id"] for p in back["results"]] == [pictures[3].pk, pictures[2].pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page_size=101", "page_size"),
        ("page_size=0", "page_size"),
        ("page_size=ten", "page_size"),
        ("page_size=%C2%B2", "page_size"),  # a superscript two: a digit, but not a number
        ("ordering=random", "ordering"),
        ("cursor=bm90LWpzb24", "cursor"),
        ("cursor=%%%", "cursor"),
        ("cursor=eyJvIjoibmV3ZXN0IiwicCI6WyJub3QgYSBkYXRlIiwxXSwiciI6MCwiaSI6MH0", "cursor"),
        ("posted_after=yesterday", "posted_after"),
        ("added_before=2026-13-01", "added_before"),
    ],
)
def test_bad_query_parameters_are_a_400_naming_the_parameter(call, album, query, field):
    make_picture(album=album)
    response = call("anonymous", "get", f"/api/v1/albums/sunset/pictures/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_a_cursor_from_another_ordering_is_refused(call, album):
    add_pictures(album, 3)
    next_url = call("anonymous", "get", "/api/v1/albums/sunset/pictures/?page_size=1").json()["next"]
    response = call("anonymous", "get", next_url.replace("page_size=1", "page_size=1&ordering=oldest"))
    assert response.status_code == 400
    assert "another ordering" in response.json()["cursor"][0]


def test_pages_are_at_most_100_pictures(call, album):
    add_pictures(album, 120)
    response = call("anonymous", "get", "/api/v1/albums/sunset/pictures/?page_size=100")
    assert len(response.json()["results"]) == 100
    assert len(call("anonymous", "get", "/api/v1/albums/sunset/pictures/").json()["results"]) == 50


def test_the_author_filter_ignores_the_at_sign_and_case(call, album):
    ann = make_picture(album=album, author_handle="Ann_X")
    make_picture(album=album, author_handle="bob")
    for value in ("Ann_X", "ann_x", "%40ANN_X"):
        assert ids(call("anonymous", "get", f"/api/v1/albums/sunset/pictures/?author={value}")) == [ann.pk]


def test_pictures_say_their_network_and_filter_by_it(call, album):
    on_x = make_picture(album=album, source="x")
    on_mastodon = make_picture(
        album=album,
        source="mastodon",
        post_id="https://mastodon.example/users/ann/statuses/1",
        author_handle="ann@mastodon.example",
    )
    base = "/api/v1/albums/sunset/pictures/"
    data = call("anonymous", "get", f"/api/v1/pictures/{on_mastodon.pk}/").json()
    assert (data["source"], data["author_handle"]) == ("mastodon", "ann@mastodon.example")
    assert ids(call("anonymous", "get", base + "?source=mastodon")) == [on_mastodon.pk]
    assert ids(call("anonymous", "get", base + "?source=x")) == [on_x.pk]
    assert ids(call("anonymous", "get", base + "?author=@ann@mastodon.example")) == [on_mastodon.pk]
    assert call("anonymous", "get", base + "?source=myspace").status_code == 400


def test_time_filters_select_posted_and_added_ranges(call, album):
    day = datetime(2026, 5, 1, tzinfo=UTC)
    early = make_picture(album=album, posted_at=day, added_at=day + timedelta(days=10))
    late = make_picture(album=album, posted_at=day + timedelta(days=2), added_at=day + timedelta(days=3))
    base = "/api/v1/albums/sunset/pictures/?"
    assert ids(call("anonymous", "get", base + "posted_after=2026-05-02T00:00:00Z")) == [late.pk]
    assert ids(call("anonymous", "get", base + "posted_before=2026-05-02T00:00:00Z")) == [early.pk]
    assert ids(call("anonymous", "get", base + "added_after=2026-05-05T00:00:00%2B00:00")) == [early.pk]
    assert ids(call("anonymous", "get", base + "added_before=2026-05-05")) == [late.pk]
    both = base + "posted_after=2026-04-30T00:00:00Z&added_before=2026-05-05T00:00:00Z"
    assert ids(call("anonymous", "get", both)) == [late.pk]


def test_filters_and_orderings_combine_across_pages(call, album):
    anns = add_pictures(album, 10, author_handle="ann")
    add_pictures(album, 10, author_handle="bob")
    first = call("anonymous", "get", "/api/v1/albums/sunset/pictures/?author=ann&ordering=oldest&page_size=4").json()
    assert "author=ann" in first["next"] and "ordering=oldest" in first["next"]
    pages = walk(call, "/api/v1/albums/sunset/pictures/?author=ann&ordering=oldest&page_size=4")
    assert [pk for page in pages for pk in page] == [p.pk for p in anns]


def test_an_unlisted_albums_pictures_need_the_key_and_their_links_keep_it(call, hush):
    add_pictures(hush, 3)
    assert call("anonymous", "get", "/api/v1/albums/hush/pictures/").status_code == 404
    body = call("anonymous", "get", f"/api/v1/albums/hush/pictures/?key={hush.secret}&page_size=2").json()
    assert f"key={hush.secret}" in body["next"]
    assert all(picture["url"].endswith(f"?key={hush.secret}") for picture in body["results"])
    assert call("anonymous", "get", body["results"][0]["url"]).status_code == 200


def test_the_pictures_list_answers_304_when_nothing_changed(call, album, settings):
    settings.EVERHASH_API_CACHE_SECONDS = 0
    picture = make_picture(album=album)
    first = call("anonymous", "get", "/api/v1/albums/sunset/pictures/")
    assert (
        call("anonymous", "get", "/api/v1/albums/sunset/pictures/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    )
    Picture.objects.filter(pk=picture.pk).update(like_count=999)
    again = call("anonymous", "get", "/api/v1/albums/sunset/pictures/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200
    assert again.json()["results"][0]["like_count"] == 999


def test_a_page_is_reused_until_the_albums_pictures_change(call, album, settings):
    settings.EVERHASH_API_CACHE_SECONDS = 60
    picture = make_picture(album=album, like_count=1)
    assert call("anonymous", "get", "/api/v1/albums/sunset/pictures/").json()["results"][0]["like_count"] == 1
    Picture.objects.filter(pk=picture.pk).update(like_count=2)  # behind the services' back
    with CaptureQueriesContext(connection) as captured:
        cached = call("anonymous", "get", "/api/v1/albums/sunset/pictures/")
    assert cached.json()["results"][0]["like_count"] == 1
    assert len(captured) == 1  # the album's visibility and version, nothing else
    pictures_changed(album_ids=[album.pk])  # what every fetch and moderation action does
    assert call("anonymous", "get", "/api/v1/albums/sunset/pictures/").json()["results"][0]["like_count"] == 2


def test_a_hidden_picture_leaves_cached_pages_at_once(call, album, staff, settings):
    settings.EVERHASH_API_CACHE_SECONDS = 60
    picture = make_picture(album=album)
    assert len(call("anonymous", "get", "/api/v1/albums/sunset/pictures/").json()["results"]) == 1
    hide(pictures=Picture.objects.filter(pk=picture.pk), by=staff)
    assert call("anonymous", "get", "/api/v1/albums/sunset/pictures/").json()["results"] == []


@pytest.mark.parametrize("endpoint", ["pictures", "popular"])
def test_a_cached_page_is_never_given_to_someone_who_may_not_see_the_album(call, hush, settings, endpoint):
    settings.EVERHASH_API_CACHE_SECONDS = 60
    make_picture(album=hush)
    path = f"/api/v1/albums/hush/{endpoint}/"
    assert call("owner", "get", path).status_code == 200  # cached, by the owner
    assert call("anonymous", "get", path).status_code == 404
    assert call("stranger", "get", path).status_code == 404
    assert call("staff", "get", path).status_code == 200


def test_an_album_made_unlisted_leaves_cached_pages_at_once(call, album, settings):
    settings.EVERHASH_API_CACHE_SECONDS = 60
    make_picture(album=album)
    assert call("anonymous", "get", "/api/v1/albums/sunset/pictures/").status_code == 200
    Album.objects.filter(pk=album.pk).update(visibility=Album.Visibility.UNLISTED)
    assert call("anonymous", "get", "/api/v1/albums/sunset/pictures/").status_code == 404


def test_the_browsable_api_is_never_served_from_the_json_cache(call, album, settings):
    settings.EVERHASH_API_CACHE_SECONDS = 60
    make_picture(album=album)
    assert call("anonymous", "get", "/api/v1/albums/sunset/pictures/").status_code == 200
    html = call("anonymous", "get", "/api/v1/albums/sunset/pictures/", HTTP_ACCEPT="text/html")
    assert html["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/albums/sunset/pictures/?page_size=4",
        "/api/v1/albums/sunset/pictures/?ordering=most_liked&posted_after=2025-12-31T00:00:00Z&page_size=4",
        "/api/v1/albums/sunset/popular/",
        "/api/v1/albums/sunset/authors/",
    ],
)
def test_list_endpoints_take_the_same_queries_for_10_and_1000_pictures(call, album, path):
    def queries() -> int:
        cache.clear()
        with CaptureQueriesContext(connection) as captured:
            response = call("anonymous", "get", path)
        assert response.status_code == 200
        if "/pictures/" in path:  # and a page further on
            with CaptureQueriesContext(connection) as following:
                assert call("anonymous", "get", response.json()["next"]).status_code == 200
            assert len(following) == len(captured)
        return len(captured)

    add_pictures(album, 10)
    few = queries()
    add_pictures(album, 990)
    assert queries() == few
    assert few <= 3


# --- Most liked -----------------------------------------------------------------------------------


def test_popular_is_the_top_7_by_likes_newest_first_among_ties(call, album):
    pictures = add_pictures(album, 12)
    for index, picture in enumerate(pictures):
        picture.like_count = [5, 9, 1, 9, 3, 7, 2, 8, 0, 6, 4, 9][index]
    Picture.objects.bulk_update(pictures, ["like_count"])
    body = call("anonymous", "get", "/api/v1/albums/sunset/popular/").json()
    assert [p["like_count"] for p in body] == [9, 9, 9, 8, 7, 6, 5]
    assert [p["id"] for p in body[:3]] == [pictures[11].pk, pictures[3].pk, pictures[1].pk]


@pytest.mark.parametrize(("limit", "count"), [("1", 1), ("50", 50)])
def test_popular_takes_a_limit_up_to_50(call, album, limit, count):
    add_pictures(album, 60)
    assert len(call("anonymous", "get", f"/api/v1/albums/sunset/popular/?limit={limit}").json()) == count


@pytest.mark.parametrize("limit", ["0", "51", "many", ""])
def test_popular_refuses_a_limit_outside_1_to_50(call, album, limit):
    response = call("anonymous", "get", f"/api/v1/albums/sunset/popular/?limit={limit}")
    assert response.status_code == 400
    assert "limit" in response.json()


# --- Authors --------------------------------------------------------------------------------------


def test_authors_are_listed_with_their_picture_counts_most_first(call, album):
    for handle, count in (("bob", 1), ("ann", 3), ("cid", 3)):
        for _ in range(count):
            make_picture(album=album, author_handle=handle, author_name=handle.title())
    make_picture(album=album, author_handle="dee", status=Picture.Status.HIDDEN)
    body = call("anonymous", "get", "/api/v1/albums/sunset/authors/").json()
    assert body["count"] == 3
    assert [(a["handle"], a["name"], a["picture_count"]) for a in body["results"]] == [
        ("ann", "Ann", 3),
        ("cid", "Cid", 3),
        ("bob", "Bob", 1),
    ]
    link = body["results"][0]["pictures_url"]
    assert link == "http://testserver/api/v1/albums/sunset/pictures/?author=ann"
    assert len(call("anonymous", "get", link).json()["results"]) == 3


# --- One picture ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Picture.Status.HIDDEN, Picture.Status.PENDING])
def test_a_hidden_or_pending_picture_is_a_404_for_everyone(call, album, status):
    picture = make_picture(album=album, status=status)
    for role in ROLES:
        assert call(role, "get", f"/api/v1/pictures/{picture.pk}/").status_code == 404


def test_an_unknown_picture_is_a_json_404(call, db):
    for path in ("/api/v1/pictures/999999/", "/api/v1/pictures/abc/", "/api/v1/pictures/99999999999999999999/"):
        response = call("anonymous", "get", path)
        assert response.status_code == 404
        assert "detail" in response.json()


def test_a_picture_of_an_unlisted_album_needs_the_albums_key_not_another(call, hush, album):
    picture = make_picture(album=hush)
    assert call("anonymous", "get", f"/api/v1/pictures/{picture.pk}/?key={album.secret}").status_code == 404
    assert call("anonymous", "get", f"/api/v1/pictures/{picture.pk}/?key={hush.secret}").status_code == 200


def test_author_names_and_alt_text_come_back_as_plain_json_text(call, album):
    make_picture(album=album, author_name="<b>Bold</b>", alt_text='"><script>alert(1)</script>')
    response = call("anonymous", "get", "/api/v1/albums/sunset/pictures/")
    assert response["Content-Type"] == "application/json"
    assert response.json()["results"][0]["alt_text"] == '"><script>alert(1)</script>'
    html = call("anonymous", "get", "/api/v1/albums/sunset/pictures/", HTTP_ACCEPT="text/html").content.decode()
    assert "<script>alert(1)" not in html
