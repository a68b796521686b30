"""Moderation in the admin: bulk actions, the review grid, block lists, takedowns, the audit log."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from albums.models import Album
from collages.models import Collage
from everhash.testing.builders import album_source, make_album, make_picture, make_stored_picture, stored_keys
from pictures.models import BlockedAuthor, BlockedWord, DeletedMedia, ModerationAction, Picture, Takedown
from tweets.models import FetchRun
from users.models import User

Status = Picture.Status
EVIL = "<img src=x onerror=alert(1)>"
CHANGELIST = "/admin/pictures/picture/"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def act(client, url: str, action: str, objects, follow: bool = False, **extra):
    return client.post(url, {"action": action, "_selected_action": [o.pk for o in objects], **extra}, follow=follow)


def statuses() -> dict[int, str]:
    return dict(Picture.objects.values_list("pk", "status"))


def review_url(album: Album) -> str:
    return f"/admin/pictures/picture/review/{album.pk}/"


def decide_url(album: Album) -> str:
    return f"/admin/pictures/picture/review/{album.pk}/decide/"


# --- Who may use it ------------------------------------------------------------------------------

PAGES = [
    "/admin/pictures/blockedauthor/",
    "/admin/pictures/blockedauthor/add/",
    "/admin/pictures/blockedword/",
    "/admin/pictures/blockedword/add/",
    "/admin/pictures/takedown/",
    "/admin/pictures/takedown/add/",
    "/admin/pictures/deletedmedia/",
    "/admin/pictures/moderationaction/",
    "/admin/pictures/picture/?status__exact=pending",
    "/admin/albums/album/?fetch=error",
    "/admin/albums/album/add/?hashtag=new",
    "album",
    "review",
]


@pytest.mark.parametrize("url", PAGES)
def test_staff_open_every_moderation_page(admin_client, album, url):
    make_picture(album=album, status=Status.PENDING)
    response = admin_client.get(page_url(album, url))
    assert response.status_code == 200


def page_url(album: Album, url: str) -> str:
    return {"review": review_url(album), "album": f"/admin/albums/album/{album.pk}/change/"}.get(url, url)


@pytest.mark.parametrize("url", PAGES)
def test_everyone_else_is_sent_to_the_login(client, other, owner, album, url):
    url = page_url(album, url)
    for user in (None, other, owner):  # the album's owner is not staff either
        if user:
            client.force_login(user)
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_nobody_but_staff_can_decide(client, other, owner, album):
    picture = make_picture(album=album, status=Status.PENDING)
    for user in (None, other, owner):
        if user:
            client.force_login(user)
        response = client.post(decide_url(album), {"picture": picture.pk, "decision": "approve"})
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert statuses() == {picture.pk: Status.PENDING}


def test_staff_without_the_permission_to_change_pictures_cannot_review(client, album):
    clerk = User.objects.create_user("clerk@example.com", "pw", is_staff=True)
    picture = make_picture(album=album, status=Status.PENDING)
    client.force_login(clerk)
    assert client.get(review_url(album)).status_code == 403
    assert client.post(decide_url(album), {"picture": picture.pk, "decision": "approve"}).status_code == 403
    assert statuses() == {picture.pk: Status.PENDING}


@pytest.mark.parametrize(
    "url",
    [CHANGELIST, "review", "/admin/albums/album/", "/admin/pictures/moderationaction/", "/admin/tweets/fetchrun/"],
)
def test_moderation_lists_make_the_same_number_of_queries_for_5_and_50_rows(admin_client, staff, owner, url):
    counts = []
    for n in (5, 50):
        Album.objects.all().delete()
        album = make_album(owner=owner, hashtag="sunset")
        for i in range(n):
            make_picture(album=album, status=Status.PENDING, author_handle=f"a{i}")
            make_album(owner=owner, hashtag=f"more{i}")
            ModerationAction.objects.create(user=staff, action="hide", album=album, hashtag="sunset")
            FetchRun.objects.create(album=album)
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(page_url(album, url)).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


# --- Pictures: bulk actions ------------------------------------------------------------------------


def test_bulk_approve_hide_and_unhide_go_through_the_audit_log(admin_client, staff, album):
    pending = make_picture(album=album, status=Status.PENDING)
    visible = make_picture(album=album)
    response = act(admin_client, CHANGELIST, "approve_pictures", [pending, visible])
    assert response.status_code == 302
    assert statuses() == {pending.pk: Status.VISIBLE, visible.pk: Status.VISIBLE}
    act(admin_client, CHANGELIST, "hide_pictures", [pending, visible])
    assert set(statuses().values()) == {Status.HIDDEN}
    act(admin_client, CHANGELIST, "unhide_pictures", [visible])
    assert statuses()[visible.pk] == Status.VISIBLE
    log = list(ModerationAction.objects.order_by("id").values_list("action", "count", "user"))
    assert log == [("approve", 1, staff.pk), ("hide", 2, staff.pk), ("unhide", 1, staff.pk)]
    messages = [str(m) for m in admin_client.get(CHANGELIST).context["messages"]]
    assert "1 hidden picture shown again." in messages


def test_bulk_delete_asks_first_then_removes_rows_and_files(admin_client, album):
    gone = make_stored_picture(album, "coffee.png", post_id="1")
    kept = make_stored_picture(album, "rocket.jpg", post_id="2")
    Album.objects.update(collage_stale=False)
    confirm = act(admin_client, CHANGELIST, "delete_selected", [gone])
    assert confirm.status_code == 200 and b"Are you sure" in confirm.content
    assert Picture.objects.count() == 2
    act(admin_client, CHANGELIST, "delete_selected", [gone], post="yes")
    assert list(Picture.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not any(default_storage.exists(key) for key in stored_keys(gone))
    assert all(default_storage.exists(key) for key in stored_keys(kept))
    assert Album.objects.get().collage_stale
    assert ModerationAction.objects.get().action == "delete"
    assert DeletedMedia.objects.get().media_key == gone.media_key


def test_deleting_one_picture_from_its_page_removes_its_files(admin_client, album):
    picture = make_stored_picture(album, "coffee.png")
    admin_client.post(f"/admin/pictures/picture/{picture.pk}/delete/", {"post": "yes"})
    assert not Picture.objects.exists()
    assert not any(default_storage.exists(key) for key in stored_keys(picture))
    assert ModerationAction.objects.get().action == "delete"


def test_banning_from_the_album_hides_the_authors_pictures_there_only(admin_client, owner, album):
    beach = make_album(owner=owner, hashtag="beach")
    chosen = make_picture(album=album, source="x", author_handle="Spammer")
    same_author = make_picture(album=album, source="x", author_handle="spammer")
    elsewhere = make_picture(album=beach, source="x", author_handle="spammer")
    bystander = make_picture(album=album, source="x", author_handle="ana")
    act(admin_client, CHANGELIST, "ban_from_album", [chosen, same_author])
    assert statuses() == {
        chosen.pk: Status.HIDDEN,
        same_author.pk: Status.HIDDEN,
        elsewhere.pk: Status.VISIBLE,
        bystander.pk: Status.VISIBLE,
    }
    assert list(BlockedAuthor.objects.values_list("album__hashtag", "source", "handle")) == [("sunset", "x", "spammer")]


def test_banning_from_every_album_blocks_the_author_globally(admin_client, owner, album):
    beach = make_album(owner=owner, hashtag="beach")
    chosen = make_picture(album=album, source="x", author_handle="spammer")
    elsewhere = make_picture(album=beach, source="x", author_handle="SPAMMER")
    act(admin_client, CHANGELIST, "ban_everywhere", [chosen])
    assert statuses() == {chosen.pk: Status.HIDDEN, elsewhere.pk: Status.HIDDEN}
    block = BlockedAuthor.objects.get()
    assert (block.album, block.handle) == (None, "spammer")
    assert Album.objects.filter(collage_stale=True).count() == 2


def test_changing_the_status_on_a_pictures_page_is_logged(admin_client, album):
    picture = make_picture(album=album, status=Status.PENDING)
    url = f"/admin/pictures/picture/{picture.pk}/change/"
    assert admin_client.post(url, {"status": "visible"}).status_code == 302
    admin_client.post(url, {"status": "hidden"})
    admin_client.post(url, {"status": "visible"})
    assert list(ModerationAction.objects.order_by("id").values_list("action", flat=True)) == [
        "approve",
        "hide",
        "unhide",
    ]
    response = admin_client.post(url, {"status": "pending"})
    assert response.status_code == 200
    assert "hide it instead" in response.content.decode()
    assert statuses() == {picture.pk: Status.VISIBLE}


def test_a_link_to_a_post_finds_its_pictures_and_the_author_filter_takes_any_handle(admin_client, album):
    wanted = make_picture(album=album, post_id="1850000000000000042", author_handle="Ana")
    make_picture(album=album, author_handle="bob")
    found = admin_client.get(CHANGELIST, {"q": "https://x.com/Ana/status/1850000000000000042?s=20"})
    assert list(found.context["cl"].result_list) == [wanted]
    by_author = admin_client.get(CHANGELIST, {"author": "ana"})
    assert list(by_author.context["cl"].result_list) == [wanted]
    in_album = admin_client.get(CHANGELIST, {"album__id__exact": album.pk})
    assert "@Ana (1)" in in_album.content.decode()


def test_pictures_cannot_be_added_by_hand(admin_client):
    assert admin_client.get("/admin/pictures/picture/add/").status_code == 403


# --- The review grid --------------------------------------------------------------------------------


def test_the_review_grid_shows_the_albums_pending_pictures_oldest_first(admin_client, owner, album):
    now = timezone.now()
    newer = make_picture(album=album, status=Status.PENDING, author_handle="newer", added_at=now)
    older = make_picture(album=album, status=Status.PENDING, author_handle="older", added_at=now - timedelta(hours=1))
    make_picture(album=album, author_handle="shown")
    make_picture(album=make_album(owner=owner, hashtag="beach"), status=Status.PENDING, author_handle="beachy")
    response = admin_client.get(review_url(album))
    assert [p.pk for p in response.context["pictures"]] == [older.pk, newer.pk]
    body = response.content.decode()
    assert "@shown" not in body and "@beachy" not in body
    assert 'name="csrfmiddlewaretoken"' in body
    assert 'value="approve"' in body and 'value="hide"' in body


def test_the_album_list_links_to_the_review_grid_with_the_pending_count(admin_client, album):
    make_picture(album=album, status=Status.PENDING)
    make_picture(album=album, status=Status.PENDING)
    body = admin_client.get("/admin/albums/album/").content.decode()
    assert f'<a href="{review_url(album)}" title="Review them">2</a>' in body


def test_deciding_with_javascript_answers_json_and_needs_the_csrf_token(staff, album):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    first = make_picture(album=album, status=Status.PENDING)
    second = make_picture(album=album, status=Status.PENDING)
    page = client.get(review_url(album)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = {"picture": first.pk, "decision": "approve"}
    assert client.post(decide_url(album), body, HTTP_ACCEPT="application/json").status_code == 403
    response = client.post(decide_url(album), body, HTTP_ACCEPT="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.json() == {"picture": first.pk, "status": "visible", "changed": 1, "pending": 1}
    response = client.post(
        decide_url(album),
        {"picture": second.pk, "decision": "hide"},
        HTTP_ACCEPT="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.json()["status"] == "hidden" and response.json()["pending"] == 0
    assert statuses() == {first.pk: Status.VISIBLE, second.pk: Status.HIDDEN}
    assert Album.objects.get().collage_stale


def test_deciding_without_javascript_posts_the_form_and_comes_back(admin_client, album):
    picture = make_picture(album=album, status=Status.PENDING, author_handle="ana")
    response = admin_client.post(decide_url(album), {"picture": picture.pk, "decision": "hide"}, follow=True)
    assert response.redirect_chain == [(review_url(album), 302)]
    assert "The picture by @ana is hidden." in [str(m) for m in response.context["messages"]]
    response = admin_client.post(decide_url(album), {"picture": picture.pk, "decision": "approve"}, follow=True)
    assert "already decided (hidden)" in response.content.decode()
    assert statuses() == {picture.pk: Status.HIDDEN}


@pytest.mark.parametrize(
    "body",
    [{}, {"picture": "x", "decision": "approve"}, {"picture": "1", "decision": "delete"}, {"decision": "hide"}],
)
def test_a_malformed_decision_is_refused_politely(admin_client, album, body):
    assert admin_client.post(decide_url(album), body, HTTP_ACCEPT="application/json").status_code == 400
    assert admin_client.post(decide_url(album), body).status_code == 302


def test_a_picture_of_another_album_or_a_get_is_refused(admin_client, owner, album):
    elsewhere = make_picture(album=make_album(owner=owner, hashtag="beach"), status=Status.PENDING)
    assert admin_client.post(decide_url(album), {"picture": elsewhere.pk, "decision": "approve"}).status_code == 404
    assert admin_client.get(decide_url(album)).status_code == 405
    assert admin_client.get("/admin/pictures/picture/review/999999/").status_code == 404
    assert statuses() == {elsewhere.pk: Status.PENDING}


# --- Post data is escaped ---------------------------------------------------------------------------


def test_post_data_is_escaped_on_every_moderation_page(admin_client, staff, album):
    picture = make_picture(
        album=album, status=Status.PENDING, author_name=EVIL, author_handle="evil", text=EVIL, alt_text=EVIL
    )
    BlockedAuthor.objects.create(album=album, source="x", handle="evil", reason=EVIL, created_by=staff)
    ModerationAction.objects.create(user=staff, action="hide", hashtag="sunset", detail=EVIL)
    Takedown.objects.create(post_id="5", reason=EVIL)
    for url in (
        CHANGELIST,
        f"/admin/pictures/picture/{picture.pk}/change/",
        review_url(album),
        "/admin/pictures/blockedauthor/",
        "/admin/pictures/moderationaction/",
        "/admin/pictures/takedown/",
    ):
        body = admin_client.get(url).content.decode()
        assert "<img src=x onerror" not in body, url
    body = admin_client.get(review_url(album)).content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


# --- Block lists and takedowns ---------------------------------------------------------------------


def test_adding_a_blocked_author_bans_them_and_hides_their_pictures(admin_client, staff, album):
    picture = make_picture(album=album, source="x", author_handle="Spammer")
    response = admin_client.post(
        "/admin/pictures/blockedauthor/add/",
        {"album": album.pk, "source": "x", "handle": " @Spammer ", "reason": "ads"},
    )
    assert response.status_code == 302
    block = BlockedAuthor.objects.get()
    assert (block.handle, block.reason, block.created_by) == ("spammer", "ads", staff)
    assert statuses() == {picture.pk: Status.HIDDEN}
    assert ModerationAction.objects.get().action == "ban"


def test_a_global_block_is_not_added_twice(admin_client):
    data = {"album": "", "source": "x", "handle": "spammer", "reason": ""}
    assert admin_client.post("/admin/pictures/blockedauthor/add/", data).status_code == 302
    response = admin_client.post("/admin/pictures/blockedauthor/add/", {**data, "handle": "@SPAMMER"})
    assert response.status_code == 200
    assert "This author is already blocked there." in response.content.decode()
    assert BlockedAuthor.objects.count() == 1


def test_a_blocked_author_needs_a_handle(admin_client):
    response = admin_client.post("/admin/pictures/blockedauthor/add/", {"source": "x", "handle": "two words"})
    assert "like @someone" in response.content.decode()
    assert not BlockedAuthor.objects.exists()


def test_removing_a_block_lifts_the_ban_and_is_logged(admin_client, album):
    block = BlockedAuthor.objects.create(album=album, source="x", handle="spammer")
    admin_client.post(f"/admin/pictures/blockedauthor/{block.pk}/delete/", {"post": "yes"})
    assert not BlockedAuthor.objects.exists()
    assert ModerationAction.objects.get().action == "unban"
    block = BlockedAuthor.objects.create(source="x", handle="other")
    act(admin_client, "/admin/pictures/blockedauthor/", "delete_selected", [block], post="yes")
    assert not BlockedAuthor.objects.exists()
    assert ModerationAction.objects.filter(action="unban").count() == 2


def test_blocks_are_not_edited_in_place(admin_client, album):
    block = BlockedAuthor.objects.create(album=album, source="x", handle="spammer")
    url = f"/admin/pictures/blockedauthor/{block.pk}/change/"
    assert admin_client.get(url).status_code == 200  # readable
    assert admin_client.post(url, {"album": "", "source": "x", "handle": "someone"}).status_code == 403


def test_blocked_words_are_added_and_removed_through_the_admin(admin_client, album):
    assert (
        admin_client.post("/admin/pictures/blockedword/add/", {"album": "", "word": " Free  CRYPTO "}).status_code
        == 302
    )
    word = BlockedWord.objects.get()
    assert (word.album, word.word) == (None, "free crypto")
    response = admin_client.post("/admin/pictures/blockedword/add/", {"album": "", "word": "free crypto"})
    assert "This word is already blocked there." in response.content.decode()
    assert (
        "at least one letter" in admin_client.post("/admin/pictures/blockedword/add/", {"word": "!!"}).content.decode()
    )
    admin_client.post(f"/admin/pictures/blockedword/{word.pk}/delete/", {"post": "yes"})
    assert not BlockedWord.objects.exists()
    assert list(ModerationAction.objects.order_by("id").values_list("action", flat=True)) == [
        "block_word",
        "unblock_word",
    ]


def test_a_takedown_by_link_deletes_the_post_everywhere(admin_client, staff, owner, album):
    beach = make_album(owner=owner, hashtag="beach")
    here = make_stored_picture(album, "coffee.png", post_id="1850000000000000007")
    there = make_stored_picture(beach, "coffee.png", post_id="1850000000000000007")
    kept = make_stored_picture(album, "rocket.jpg", post_id="1850000000000000008")
    response = admin_client.post(
        "/admin/pictures/takedown/add/",
        {"post": "https://twitter.com/ana/status/1850000000000000007", "source": "x", "reason": "DMCA"},
        follow=True,
    )
    assert response.status_code == 200
    assert "2 pictures deleted" in response.content.decode()
    record = Takedown.objects.get()
    assert (record.post_id, record.reason, record.created_by) == ("1850000000000000007", "DMCA", staff)
    assert list(Picture.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not any(default_storage.exists(key) for key in stored_keys(here) + stored_keys(there))
    again = admin_client.post("/admin/pictures/takedown/add/", {"post": "1850000000000000007", "source": "x"})
    assert "already taken down" in again.content.decode()


@pytest.mark.parametrize("post", ["", "https://example.com/ana/status/1", "twelve"])
def test_a_takedown_needs_a_post_id_or_link(admin_client, post):
    response = admin_client.post("/admin/pictures/takedown/add/", {"post": post, "source": "x"})
    assert response.status_code == 200
    assert not Takedown.objects.exists()


def test_lifting_a_takedown_is_logged(admin_client):
    record = Takedown.objects.create(post_id="5")
    assert admin_client.get(f"/admin/pictures/takedown/{record.pk}/change/").status_code == 200
    admin_client.post(f"/admin/pictures/takedown/{record.pk}/delete/", {"post": "yes"})
    assert not Takedown.objects.exists()
    assert ModerationAction.objects.get().action == "lift_takedown"


def test_the_audit_log_and_fetch_history_are_read_only(admin_client, staff, album):
    action = ModerationAction.objects.create(user=staff, action="hide", hashtag="sunset")
    run = FetchRun.objects.create(album=album, skipped=4, error="boom")
    assert admin_client.get(f"/admin/pictures/moderationaction/{action.pk}/change/").status_code == 200
    assert admin_client.post(f"/admin/pictures/moderationaction/{action.pk}/change/", {}).status_code == 403
    assert admin_client.get("/admin/pictures/moderationaction/add/").status_code == 403
    assert (
        admin_client.post(f"/admin/pictures/moderationaction/{action.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert admin_client.get("/admin/tweets/fetchrun/add/").status_code == 403
    assert admin_client.post(f"/admin/tweets/fetchrun/{run.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ModerationAction.objects.count() == 1 and FetchRun.objects.count() == 1
    listing = admin_client.get("/admin/tweets/fetchrun/?outcome=failed").content.decode()
    assert "boom" in listing and 'class="field-skipped">4<' in listing


# --- Albums ----------------------------------------------------------------------------------------

ALBUMS = "/admin/albums/album/"


def test_pause_and_resume_albums(admin_client, owner, album):
    act(admin_client, ALBUMS, "pause", [album])
    assert not Album.objects.get().is_active
    act(admin_client, ALBUMS, "resume", [album])
    assert Album.objects.get().is_active
    assert list(ModerationAction.objects.order_by("id").values_list("action", flat=True)) == ["pause", "resume"]


def test_fetch_now_makes_an_album_due_but_keeps_its_rate_limit(admin_client, owner, album):
    limit = timezone.now() + timedelta(minutes=10)
    Album.objects.filter(pk=album.pk).update(next_fetch_at=timezone.now() + timedelta(hours=3))
    album_source(album, rate_limited_until=limit)
    paused = make_album(owner=owner, hashtag="paused", is_active=False)
    response = act(admin_client, ALBUMS, "fetch_now", [album, paused], follow=True)
    assert list(Album.objects.due()) == [album]
    assert album_source(album).rate_limited_until == limit
    assert "1 paused album left alone" in response.content.decode()


def test_rebuild_collage_builds_from_visible_pictures_only(admin_client, album):
    first = make_stored_picture(album, "coffee.png", post_id="1", likes=5)
    make_stored_picture(album, "rocket.jpg", post_id="2", likes=3)
    act(admin_client, ALBUMS, "rebuild_collage", [album])
    assert Collage.objects.get().picture_count == 2
    assert not Album.objects.get().collage_stale
    # Hiding a picture the collage shows rebuilds it at once (pictures.moderation).
    act(admin_client, CHANGELIST, "hide_pictures", [first])
    assert Collage.objects.get().picture_count == 1
    assert not Album.objects.get().collage_stale
    act(admin_client, ALBUMS, "rebuild_collage", [album])
    assert Collage.objects.get().picture_count == 1


def test_the_album_list_shows_counts_and_fetch_state(admin_client, album):
    make_picture(album=album)
    make_picture(album=album, status=Status.HIDDEN)
    Album.objects.filter(pk=album.pk).update(last_error=EVIL, last_fetch_at=timezone.now())
    response = admin_client.get(ALBUMS, {"fetch": "error"})
    assert list(response.context["cl"].result_list) == [album]
    row = response.context["cl"].result_list[0]
    assert (row.visible_total, row.picture_total, row.pending_total) == (1, 2, 0)
    assert "<img src=x onerror" not in response.content.decode()
    assert list(admin_client.get(ALBUMS, {"fetch": "ok"}).context["cl"].result_list) == []


def test_deleting_an_album_in_the_admin_removes_its_files(admin_client, album):
    picture = make_stored_picture(album, "coffee.png")
    admin_client.post(f"/admin/albums/album/{album.pk}/delete/", {"post": "yes"})
    assert not Album.objects.exists()
    assert not any(default_storage.exists(key) for key in stored_keys(picture))


# --- The review grid in a real browser (Debian's Chromium through Playwright) ----------------------


def test_a_moderator_reviews_with_the_keyboard_without_reloading(browser, live_server, transactional_db, staff):
    album = make_album(owner=staff, hashtag="wall", moderation=Album.Moderation.APPROVE_FIRST)
    now = timezone.now()
    first, second, third = (
        make_picture(album=album, status=Status.PENDING, author_name=EVIL, added_at=now + timedelta(seconds=i))
        for i in range(3)
    )
    client = Client()
    client.force_login(staff)
    context = browser.new_context()
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    errors, dialogs = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(live_server.url + review_url(album))
    page.evaluate("window.sameDocument = true")
    cards = page.locator("#review-grid > li")
    assert cards.nth(0).get_attribute("class") == "current"

    page.keyboard.press("a")  # approve the first; the selection moves on
    page.wait_for_selector(f"#picture-{first.pk}.decided")
    assert "current" in cards.nth(1).get_attribute("class")
    page.keyboard.press("h")  # hide the second
    page.wait_for_selector(f"#picture-{second.pk}.decided")
    page.keyboard.press("k")
    assert "current" in cards.nth(1).get_attribute("class")
    page.keyboard.press("j")
    page.keyboard.press("a")
    page.wait_for_selector(f"#picture-{third.pk}.decided")

    assert page.locator("#pending-count").inner_text() == "0"
    assert [cards.nth(i).locator(".outcome").inner_text() for i in range(3)] == ["Approved", "Hidden", "Approved"]
    assert page.evaluate("window.sameDocument") is True  # no reload
    assert statuses() == {first.pk: Status.VISIBLE, second.pk: Status.HIDDEN, third.pk: Status.VISIBLE}
    assert errors == [] and dialogs == []
    context.close()
