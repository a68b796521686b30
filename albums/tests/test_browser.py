"""The album pages in a real browser: Debian's Chromium, driven by Playwright, against the live server.

Set EVERHASH_SCREENSHOTS=1 to write the screenshots into docs/screenshots/ (otherwise a temporary folder).
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from albums.models import Album
from everhash.testing.builders import make_picture, photo_bytes
from pictures.models import Picture
from pictures.services import ingest_photo, load_signature_index
from tweets.sources import Photo, Post

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


@pytest.fixture
def cats(transactional_db, staff, settings, live_server):
    """The small bundled sample album, ingested through the real pipeline."""
    settings.EVERHASH_X_BEARER_TOKEN = ""
    settings.EVERHASH_SITE_URL = live_server.url
    call_command("add_sample_albums", stdout=StringIO())
    call_command("fetch_tweets", "--album", "catsofeverhash", stdout=StringIO())
    call_command("build_collages", "--album", "catsofeverhash", stdout=StringIO())
    return Album.objects.get(hashtag="catsofeverhash")


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


def test_the_album_page_opens_the_lightbox_and_pages_to_the_next_picture(page, live_server, cats, shots):
    page.goto(f"{live_server.url}/album/catsofeverhash/")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=shots / "album-desktop.jpg", full_page=False)
    cards = page.locator(".card")
    assert cards.count() == 12
    first_author = cards.nth(0).locator(".author").inner_text()
    second_author = cards.nth(1).locator(".author").inner_text()

    cards.nth(0).locator("a.pswp-item").click()
    page.wait_for_selector("html[data-lightbox=open]")
    caption = page.locator(".pswp__caption")
    assert first_author in caption.inner_text()
    page.screenshot(path=shots / "lightbox-desktop.jpg")
    page.wait_for_selector("html[data-lightbox=open]")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "author => document.querySelector('.pswp__caption').innerText.includes(author)", arg=second_author
    )
    assert "Open the post" in caption.inner_text()
    page.keyboard.press("Escape")
    assert page.errors == []


def test_the_album_and_popular_pages_fit_a_phone(browser, live_server, cats, shots):
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    for path, name in (
        ("/album/catsofeverhash/", "album-phone.jpg"),
        ("/album/catsofeverhash/popular/", "popular-phone.jpg"),
    ):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=shots / name)
    page.goto(f"{live_server.url}/")
    page.screenshot(path=shots / "index-phone.jpg")
    context.close()


def test_the_popular_page_carries_share_tags_that_work(page, live_server, cats, shots):
    page.goto(f"{live_server.url}/album/catsofeverhash/popular/")
    page.screenshot(path=shots / "popular-desktop.jpg")
    image = page.locator('meta[property="og:image"]').get_attribute("content")
    url = page.locator('meta[property="og:url"]').get_attribute("content")
    assert image.startswith(live_server.url + "/media/")
    assert url == f"{live_server.url}/album/catsofeverhash/popular/"
    assert page.locator('meta[name="twitter:card"]').get_attribute("content") == "summary_large_image"
    response = page.request.get(image)
    assert response.status == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert page.locator(".card").count() == 7


def test_the_slideshow_shows_a_picture_that_a_fetch_added_after_the_page_loaded(page, live_server, cats, shots):
    page.goto(f"{live_server.url}/album/catsofeverhash/slideshow/?interval=2&poll=1")
    page.wait_for_selector("#slide:not([hidden])")
    page.screenshot(path=shots / "slideshow-desktop.jpg")
    photo = Photo(media_key="3_new", url="https://pbs.twimg.com/media/new.jpg", width=640, height=427)
    post = Post(
        id="1999999999999999999",
        permalink="https://x.com/newcomer/status/1999999999999999999",
        author_handle="newcomer",
        author_name="New Comer",
        text="Just arrived #catsofeverhash",
        like_count=1,
        posted_at=datetime.now(tz=UTC),
        sensitive=False,
        photos=(photo,),
    )
    outcome = ingest_photo(
        album=cats,
        source="x",
        post=post,
        photo=photo,
        data=photo_bytes("rocket.jpg"),
        index=load_signature_index(album=cats),
    )
    assert outcome.kind == "added"
    page.wait_for_function(
        "id => document.getElementById('slide').dataset.pictureId === String(id)", arg=outcome.picture.pk, timeout=15000
    )
    assert "@newcomer" in page.locator("#author").inner_text()
    assert page.evaluate("getComputedStyle(document.body).cursor") == "none"


def test_the_owner_downloads_the_zip_in_the_browser(page, live_server, cats, client):
    client.force_login(cats.owner)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.goto(f"{live_server.url}/album/catsofeverhash/")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download (.zip)").click()
    download = download_info.value
    assert download.suggested_filename == "everhash-catsofeverhash.zip"
    archive = zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes()))
    names = archive.namelist()
    assert len(names) == cats.pictures.visible().count() + 1
    assert "catsofeverhash/manifest.csv" in names
    assert archive.testzip() is None


def test_markup_in_post_data_shows_as_text_and_never_runs(page, live_server, cats):
    evil = '<img src=x onerror=alert(1)><script>alert("boom")</script>'
    make_picture(
        album=cats,
        author_handle="mallory",
        author_name=evil,
        text=evil,
        alt_text=evil,
        renditions=Picture.objects.filter(album=cats).first().renditions,
    )
    for path in ("/album/catsofeverhash/", "/album/catsofeverhash/popular/", "/album/catsofeverhash/by/mallory/"):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
    page.goto(f"{live_server.url}/album/catsofeverhash/by/mallory/")
    assert evil in page.locator("h1").inner_text()
    assert page.dialogs == []
    assert page.errors == []
