"""The album pages in a real browser: Debian's Chromium, driven by Playwright, against the live server.

Set EVERHASH_SCREENSHOTS=1 to write the screenshots into docs/screenshots/ (otherwise a temporary folder).
"""

from __future__ import annotations

import io
import threading
import zipfile
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db.models import F
from django.utils import timezone
from PIL import Image

from albums.models import Album
from everhash.testing.builders import make_picture, photo_bytes
from pictures.models import Picture
from pictures.moderation import approve, ban_author, delete, hide, unhide
from pictures.services import ingest_photo, load_signature_index
from tweets.sources import Photo, Post
from users.models import User

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


# --- The event wall -----------------------------------------------------------------------

WITHIN_5_S = 5000  # ms: the promise for moderation reaching a running wall


def showing(page) -> int | None:
    value = page.locator("#slide").get_attribute("data-picture-id")
    return int(value) if value else None


def wait_showing(page, picture_id: int, *, timeout: int = WITHIN_5_S) -> None:
    page.wait_for_function(
        "id => document.getElementById('slide').dataset.pictureId === String(id)", arg=picture_id, timeout=timeout
    )


def wait_not_showing(page, picture_id: int, *, timeout: int = WITHIN_5_S) -> None:
    page.wait_for_function(
        "id => { const s = document.getElementById('slide'); return !s.hidden && s.dataset.pictureId !== String(id); }",
        arg=picture_id,
        timeout=timeout,
    )


def more_pictures(album: Album, n: int, **kwargs) -> list[Picture]:
    """`n` more pictures in the album, reusing the sample's rendered files (one a minute older each)."""
    renditions = list(album.pictures.values_list("renditions", flat=True))
    start = album.pictures.order_by("added_at").first().added_at
    return [
        make_picture(
            album=album,
            author_handle=f"guest{i}",
            renditions=renditions[i % len(renditions)],
            added_at=start - timedelta(minutes=i + 1),
            **kwargs,
        )
        for i in range(n)
    ]


def test_moderation_reaches_a_running_wall_within_five_seconds(page, live_server, cats, shots):
    owner = cats.owner
    [pending] = more_pictures(cats, 1, status=Picture.Status.PENDING)
    [old_hidden] = more_pictures(cats, 1, status=Picture.Status.HIDDEN)
    # A long interval: whatever changes on screen here is moderation, not the timer.
    page.goto(f"{live_server.url}/album/catsofeverhash/slideshow/?interval=120")
    page.wait_for_selector("#slide:not([hidden])")
    first = showing(page)
    assert first == cats.pictures.visible().newest_first().first().pk

    # Hiding the picture on screen takes it off the wall.
    hide(pictures=Picture.objects.filter(pk=first), by=owner)
    wait_not_showing(page, first)

    # Approving a picture added two days ago (its id is higher, its time older) puts it on screen.
    approve(pictures=Picture.objects.filter(pk=pending.pk), by=owner)
    wait_showing(page, pending.pk)
    page.screenshot(path=shots / "wall-approved-desktop.jpg")

    # Showing an old hidden picture again puts it on screen too.
    unhide(pictures=Picture.objects.filter(pk=old_hidden.pk), by=owner)
    wait_showing(page, old_hidden.pk)

    # Deleting the picture on screen takes it off; banning an author takes theirs off.
    delete(pictures=Picture.objects.filter(pk=old_hidden.pk), by=owner)
    wait_not_showing(page, old_hidden.pk)
    on_screen = Picture.objects.get(pk=showing(page))
    ban_author(source=on_screen.source, handle=on_screen.author_handle, album=cats, by=owner)
    wait_not_showing(page, on_screen.pk)

    # None of the pictures that left comes back while paging through the whole album (twice
    # round: the approved picture takes its place by age in the next round).
    left = {first, old_hidden.pk} | set(
        cats.pictures.filter(author_handle__iexact=on_screen.author_handle).values_list("pk", flat=True)
    )
    seen = set()
    for _ in range(2 * cats.pictures.visible().count() + 2):
        before = showing(page)
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "id => document.getElementById('slide').dataset.pictureId !== String(id)", arg=before, timeout=5000
        )
        seen.add(showing(page))
    assert not seen & left
    assert seen == set(cats.pictures.visible().values_list("pk", flat=True))
    assert page.errors == []


def test_the_wall_answers_an_unchanged_album_with_304s(page, live_server, cats):
    statuses = []
    page.on("response", lambda r: statuses.append(r.status) if "feed.json?since=" in r.url else None)
    page.goto(f"{live_server.url}/album/catsofeverhash/slideshow/?interval=120&poll=1")
    page.wait_for_function("() => Number(document.body.dataset.polls || 0) >= 4", timeout=10000)
    # The first poll learns the ETag; every later one is a 304 with no body.
    assert statuses[0] == 200
    assert set(statuses[1:]) == {304}


def test_the_wall_cycles_through_the_whole_album_newest_first(page, live_server, cats):
    more_pictures(cats, 60)  # 72 pictures: two pages of the feed
    expected = list(cats.pictures.visible().newest_first().values_list("pk", flat=True))
    page.goto(f"{live_server.url}/album/catsofeverhash/slideshow/?interval=120")
    page.wait_for_selector("#slide:not([hidden])")
    order = [showing(page)]
    for _ in range(len(expected)):
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "id => document.getElementById('slide').dataset.pictureId !== String(id)", arg=order[-1], timeout=5000
        )
        order.append(showing(page))
    # Every picture once, newest first, then the newest again: the wall went round.
    assert order == [*expected, expected[0]]


def test_the_wall_fits_a_phone_and_follows_taps_and_swipes(browser, live_server, cats, shots):
    small = photo_bytes("rocket.jpg", scale=0.25)
    tiny = more_pictures(cats, 1)[0]
    key = f"renditions/tiny-{tiny.pk}.jpg"
    default_storage.save(key, ContentFile(small))
    width, height = Image.open(io.BytesIO(small)).size
    tiny.renditions = {"large": {"key": key, "width": width, "height": height}}
    tiny.added_at = timezone.now()
    tiny.save()
    Album.objects.filter(pk=cats.pk).update(pictures_version=F("pictures_version") + 1)

    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{live_server.url}/album/catsofeverhash/slideshow/?interval=120")
    wait_showing(page, tiny.pk)
    # A small photo is never blown up past twice its size.
    box = page.locator("#slide").bounding_box()
    assert box["width"] <= 2 * width + 1 and box["height"] <= 2 * height + 1
    # The caption fits the screen: nothing wider than it, nothing cut off below it.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for part in page.locator(".caption > span:visible").all():
        part_box = part.bounding_box()
        assert part_box["x"] >= 0 and part_box["x"] + part_box["width"] <= PHONE["width"] + 0.5
        assert part_box["y"] + part_box["height"] <= PHONE["height"] + 0.5
    assert page.get_by_text("Tap or swipe").is_visible()
    page.screenshot(path=shots / "wall-phone.jpg")

    expected = list(cats.pictures.visible().newest_first().values_list("pk", flat=True))
    page.touchscreen.tap(300, 300)  # the right of the screen: next
    wait_showing(page, expected[1])
    page.touchscreen.tap(40, 300)  # the left third: back
    wait_showing(page, expected[0])
    swipe(page, from_x=320, to_x=60)  # swipe left: next
    wait_showing(page, expected[1])
    swipe(page, from_x=60, to_x=320)  # swipe right: back
    wait_showing(page, expected[0])
    context.close()


def swipe(page, *, from_x: int, to_x: int, y: int = 300) -> None:
    """A finger moving across the screen (Chromium's touch input, through the DevTools protocol)."""
    session = page.context.new_cdp_session(page)
    session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": from_x, "y": y}]})
    for step in range(1, 6):
        x = from_x + (to_x - from_x) * step / 5
        session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


# --- Browsing ------------------------------------------------------------------------------


def test_the_lightbox_goes_through_the_whole_album_loading_further_pages(page, live_server, cats, shots):
    more_pictures(cats, 60)  # 72 pictures: the album page shows 60
    expected = list(cats.pictures.visible().newest_first().values_list("author_handle", flat=True))
    page.goto(f"{live_server.url}/album/catsofeverhash/")
    page.locator(".card a.pswp-item").first.click()
    page.wait_for_selector("html[data-lightbox=open]")
    dialog = page.get_by_role("dialog", name="Cats of everhash: picture viewer")
    assert dialog.is_visible()
    counter = page.locator(".pswp__counter")
    assert counter.inner_text().replace(" ", "") == "1/72"
    for n in range(2, 73):
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "n => document.querySelector('.pswp__counter').innerText.replace(/ /g, '') === n + '/72'", arg=n
        )
    # The last picture came from the second page, with its caption; the album does not wrap.
    page.wait_for_function(
        "h => document.querySelector('.pswp__caption').innerText.includes('@' + h)", arg=expected[-1]
    )
    page.screenshot(path=shots / "lightbox-last-desktop.jpg")
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(400)
    assert counter.inner_text().replace(" ", "") == "72/72"
    assert page.locator(".card").count() == 72
    assert page.errors == []


def test_each_picture_has_a_page_with_share_tags_a_post_link_and_a_download(page, live_server, cats, shots):
    picture = cats.pictures.visible().newest_first().first()
    page.goto(f"{live_server.url}/album/catsofeverhash/")
    page.locator(".card a.pswp-item").first.click()
    page.wait_for_selector("html[data-lightbox=open]")
    page.locator(".pswp__caption a.picture-page").click()
    page.wait_for_url(f"{live_server.url}/album/catsofeverhash/p/{picture.pk}/")
    page.screenshot(path=shots / "picture-desktop.jpg")
    assert page.locator('meta[property="og:url"]').get_attribute("content") == page.url
    image = page.locator('meta[property="og:image"]').get_attribute("content")
    assert image.startswith(live_server.url + "/media/")
    assert page.request.get(image).status == 200
    assert page.get_by_role("link", name="Open the post").get_attribute("href") == picture.permalink
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == f"everhash-catsofeverhash-{picture.pk}.jpg"
    assert Path(download.path()).read_bytes() == default_storage.open(picture.rendition("large")["key"]).read()
    # From picture to picture without the album page.
    page.get_by_role("link", name="Older").click()
    older = cats.pictures.visible().newest_first()[1]
    page.wait_for_url(f"{live_server.url}/album/catsofeverhash/p/{older.pk}/")
    assert page.errors == []


def test_the_author_on_a_card_opens_their_pictures_and_a_separate_link_opens_the_post(page, live_server, cats):
    picture = cats.pictures.visible().newest_first().first()
    page.goto(f"{live_server.url}/album/catsofeverhash/")
    card = page.locator(".card").first
    assert card.locator("a.post-link").get_attribute("href") == picture.permalink
    card.locator("a.author").click()
    page.wait_for_url(f"{live_server.url}/album/catsofeverhash/by/{picture.author_handle}/")
    count = cats.pictures.visible().filter(author_handle=picture.author_handle).count()
    assert page.locator(".card").count() == count


def test_times_stay_true_in_a_page_left_open(page, live_server, cats):
    now = timezone.now()
    cats.pictures.update(added_at=now - timedelta(minutes=2))
    Album.objects.filter(pk=cats.pk).update(pictures_version=F("pictures_version") + 1)
    page.clock.install(time=now)
    page.goto(f"{live_server.url}/album/catsofeverhash/")
    added = page.locator(".card .times time").nth(1)
    assert added.inner_text() == "2 minutes ago"
    page.clock.run_for("11:00")  # eleven minutes later, the page still open
    assert added.inner_text() == "13 minutes ago"
    assert added.get_attribute("datetime").startswith(f"{(now - timedelta(minutes=2)):%Y-%m-%dT%H:%M}")


# --- Accessibility: axe-core on every page state ------------------------------------------

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({
    rule: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
  }));
}"""


def axe_violations(page) -> list[dict]:
    """axe-core's violations on the page as it is now. axe is evaluated through the DevTools
    protocol, which the page's CSP does not govern (it forbids inline and injected scripts)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    return page.evaluate(AXE_RUN)


def sign_in(page, live_server, client, user) -> None:
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_every_page_state_passes_axe(browser, live_server, cats, client, size, shots):
    viewport = PHONE if size == "phone" else DESKTOP
    context = browser.new_context(viewport=viewport, is_mobile=size == "phone", has_touch=size == "phone")
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    picture = cats.pictures.visible().newest_first().first()
    Album.objects.create(owner=cats.owner, hashtag="brandnew", title="Brand new")
    more_pictures(cats, 1, status=Picture.Status.PENDING)
    Album.objects.filter(pk=cats.pk).update(frame_origins="https://example.com")
    failures = {}
    # axe finds what it should: a page with no language and an image with no text fails.
    page.set_content('<html><body><main><img src="data:,"></main></body></html>')
    assert {"html-has-lang", "image-alt"} <= {v["rule"] for v in axe_violations(page)}

    def check(state: str) -> None:
        page.wait_for_load_state("networkidle")
        violations = axe_violations(page)
        if violations:
            failures[state] = violations

    def visit(state: str, path: str) -> None:
        page.goto(live_server.url + path)
        check(state)

    visit("index", "/")
    visit("index, bad hashtag in the Go box", "/go/?hashtag=sun+set")
    visit("album", "/album/catsofeverhash/")
    page.locator(".card a.pswp-item").first.click()
    page.wait_for_selector("html[data-lightbox=open]")
    check("album, lightbox open")
    visit("album, most liked", "/album/catsofeverhash/?order=liked")
    visit("popular", "/album/catsofeverhash/popular/")
    visit("by author", f"/album/catsofeverhash/by/{picture.author_handle}/")
    visit("picture page", f"/album/catsofeverhash/p/{picture.pk}/")
    visit("empty album", "/album/brandnew/")
    visit("wall", "/album/catsofeverhash/slideshow/")
    visit("wall, empty", "/album/brandnew/slideshow/")
    visit("404, unknown album", "/album/nosuchalbum/")
    visit("sign in", "/accounts/login/")
    visit("sign up", "/accounts/register/")
    page.locator("#id_email").fill("someone@example.com")
    page.locator("#id_password1").fill("short")
    page.locator("#id_password2").fill("other")
    page.get_by_role("button", name="Sign up").click()
    check("sign up, with errors")
    # The password rules are tied to the field: aria-describedby names a real id.
    described = page.locator("#id_password1").get_attribute("aria-describedby")
    assert described and all(page.locator(f"#{part}").count() == 1 for part in described.split())

    sign_in(page, live_server, client, cats.owner)
    visit("album, as its owner", "/album/catsofeverhash/")
    if size == "desktop":
        page.screenshot(path=shots / "album-owner-desktop.jpg", full_page=True)
    visit("empty album, as its owner", "/album/brandnew/")
    if size == "phone":
        page.screenshot(path=shots / "empty-album-owner-phone.jpg", full_page=True)
    visit("dashboard", "/accounts/albums/")
    visit("edit album", "/accounts/albums/catsofeverhash/edit/")
    visit("moderation page", "/album/catsofeverhash/hidden/")
    visit("moderation page, pending", "/album/catsofeverhash/hidden/?status=pending")
    visit("ban, confirmation", f"/album/catsofeverhash/pictures/{picture.pk}/ban-author/")
    visit("new album", "/album/add/")
    visit("new album, confirm", "/album/add/sunsetsforever/")
    client.logout()
    sign_in(page, live_server, client, User.objects.create_user("guest@example.com", "guest-password"))
    visit("403, someone else's zip", "/album/catsofeverhash/download.zip")
    visit("album, signed in as someone else", "/album/catsofeverhash/")
    context.close()
    assert failures == {}
    assert page.errors == []


# --- Owners ---------------------------------------------------------------------------------


def test_the_owner_bans_an_author_after_confirming_and_lifts_the_ban_in_one_step(
    page, live_server, cats, client, shots
):
    sign_in(page, live_server, client, cats.owner)
    handle = cats.pictures.visible().newest_first().first().author_handle
    theirs = set(cats.pictures.visible().filter(author_handle=handle).values_list("pk", flat=True))
    page.goto(f"{live_server.url}/album/catsofeverhash/")
    page.get_by_role("link", name=f"Ban @{handle}").first.click()
    n = len(theirs)
    assert f"This hides {n} picture{'s' if n != 1 else ''} by @{handle}" in page.locator("main").inner_text()
    page.screenshot(path=shots / "ban-confirm-desktop.jpg")
    page.get_by_role("button", name=f"Ban @{handle} and hide {n}").click()
    page.wait_for_url(f"{live_server.url}/album/catsofeverhash/")
    assert f"@{handle} is banned" in page.locator(".messages").inner_text()
    assert page.locator(".card .author", has_text=f"@{handle}").count() == 0

    page.goto(f"{live_server.url}/album/catsofeverhash/hidden/")
    show_again = page.get_by_label(f"Also show again the {n} picture")
    assert show_again.is_checked()
    page.screenshot(path=shots / "unban-desktop.jpg")
    page.get_by_role("button", name=f"Lift the ban on @{handle.lower()}").click()
    assert f"{n} picture{'s' if n != 1 else ''} shown again" in page.locator(".messages").inner_text()
    assert set(cats.pictures.visible().filter(author_handle=handle).values_list("pk", flat=True)) == theirs
    assert page.errors == []


def test_the_owner_gets_qr_codes_and_a_wall_that_only_their_sites_can_frame(
    page, live_server, cats, client, shots, csp_violations
):
    sign_in(page, live_server, client, cats.owner)
    with site_serving() as site, site_serving() as elsewhere:
        page.goto(f"{live_server.url}/accounts/albums/catsofeverhash/edit/")
        page.get_by_label("Sites that may show the wall in a frame").fill(site.origin)
        page.get_by_role("button", name="Save").click()
        page.goto(f"{live_server.url}/album/catsofeverhash/")
        for name in ("QR code of the album's page", "QR code of the album's wall"):
            qr = page.get_by_role("img", name=name)
            qr.scroll_into_view_if_needed()
            page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=qr.element_handle())
        page.locator(".owner-panel").screenshot(path=shots / "owner-panel-desktop.jpg")
        snippet = page.locator("#embed-snippet").input_value()
        assert snippet.startswith(f'<iframe src="{live_server.url}/album/catsofeverhash/slideshow/"')

        # The snippet, pasted into a page of the listed site, shows the running wall...
        site.body = elsewhere.body = f"<!doctype html><html lang=en><title>Our event</title>{snippet}".encode()
        page.goto(f"{site.origin}/event")
        page.frame_locator("iframe").locator("#slide:not([hidden])").wait_for()
        page.screenshot(path=shots / "wall-embedded-desktop.jpg")
        # ...and any other site gets nothing (the CSP's frame-ancestors names only the listed one).
        page.goto(f"{elsewhere.origin}/event")
        page.wait_for_timeout(2000)
        assert page.frame_locator("iframe").locator("#slide").count() == 0
        # Chromium says why; this one violation is the point, so it is not counted against the test.
        [refused] = csp_violations
        assert f'frame-ancestors {site.origin}"' in refused
        csp_violations.clear()


@contextmanager
def site_serving():
    """Another origin on loopback (a port of its own) that serves `.body` as its one page: the owner's site."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (http.server's hook name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(server.body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.body = b""
    server.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
