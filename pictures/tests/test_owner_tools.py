"""The owner's tools on the album page: hide, unhide, approve, ban an author from the album."""

from __future__ import annotations

import pytest
from django.test import Client

from albums.models import Album
from everhash.testing.builders import make_album, make_picture
from pictures.models import BlockedAuthor, ModerationAction, Picture

Status = Picture.Status
EVIL = "<img src=x onerror=alert(1)>"


def hide_url(picture: Picture, hashtag: str = "sunset") -> str:
    return f"/album/{hashtag}/pictures/{picture.pk}/hide/"


def status_of(picture: Picture) -> str:
    return Picture.objects.values_list("status", flat=True).get(pk=picture.pk)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_the_owner_sees_the_tools_under_each_picture(client, owner, album):
    picture = make_picture(album=album, author_handle="ana")
    client.force_login(owner)
    body = client.get("/album/sunset/").content.decode()
    assert f'action="/album/sunset/pictures/{picture.pk}/hide/"' in body
    assert f'href="/album/sunset/pictures/{picture.pk}/ban-author/"' in body
    assert 'href="/album/sunset/hidden/"' in body
    # And in the pages infinite scroll appends.
    assert hide_url(picture) in client.get("/album/sunset/?fragment=1").content.decode()


def test_staff_see_the_tools_too(client, staff, album):
    picture = make_picture(album=album)
    client.force_login(staff)
    assert hide_url(picture) in client.get("/album/sunset/").content.decode()


@pytest.mark.parametrize("who", ["anonymous", "other"])
def test_visitors_do_not_see_the_tools(client, other, album, who):
    picture = make_picture(album=album)
    if who == "other":
        client.force_login(other)
    body = client.get("/album/sunset/").content.decode()
    assert hide_url(picture) not in body and "/hidden/" not in body


def test_the_owner_hides_a_picture_and_it_leaves_the_album_page(client, owner, album):
    picture = make_picture(album=album, author_handle="ana")
    make_picture(album=album, author_handle="bob")
    Album.objects.filter(pk=album.pk).update(collage_stale=False)
    client.force_login(owner)
    response = client.post(hide_url(picture), follow=True)
    assert response.redirect_chain == [("/album/sunset/", 302)]
    assert "@ana</a>" not in response.content.decode() and "@bob</a>" in response.content.decode()
    assert response.context["count"] == 1
    assert "The picture by @ana is hidden." in messages_of(response)
    assert status_of(picture) == Status.HIDDEN
    assert Album.objects.get().collage_stale
    action = ModerationAction.objects.get()
    assert (action.user, action.action, action.picture_ids) == (owner, "hide", [picture.pk])


def test_the_owner_unhides_from_the_hidden_pictures_page(client, owner, album):
    picture = make_picture(album=album, author_handle="ana", status=Status.HIDDEN)
    client.force_login(owner)
    page = client.get("/album/sunset/hidden/")
    assert page.status_code == 200
    assert f'action="/album/sunset/pictures/{picture.pk}/unhide/"' in page.content.decode()
    response = client.post(f"/album/sunset/pictures/{picture.pk}/unhide/", follow=True)
    assert response.redirect_chain == [("/album/sunset/hidden/", 302)]
    assert "The picture by @ana is shown again." in response.content.decode()
    assert status_of(picture) == Status.VISIBLE
    assert "@ana" in client.get("/album/sunset/").content.decode()


def test_the_owner_approves_pending_pictures(client, owner, album):
    picture = make_picture(album=album, author_handle="ana", status=Status.PENDING)
    make_picture(album=album, author_handle="hid", status=Status.HIDDEN)
    client.force_login(owner)
    page = client.get("/album/sunset/hidden/?status=pending").content.decode()
    assert "@ana" in page and "@hid" not in page
    assert "Waiting for approval (1)" in page and "Hidden (1)" in page
    client.post(f"/album/sunset/pictures/{picture.pk}/approve/")
    assert status_of(picture) == Status.VISIBLE
    assert ModerationAction.objects.get().action == "approve"


def test_the_owner_bans_an_author_from_the_album(client, owner, other, album):
    chosen = make_picture(album=album, source="x", author_handle="Spammer")
    same = make_picture(album=album, source="x", author_handle="spammer", status=Status.PENDING)
    beach = make_album(owner=other, hashtag="beach")
    elsewhere = make_picture(album=beach, source="x", author_handle="spammer")
    client.force_login(owner)
    response = client.post(f"/album/sunset/pictures/{chosen.pk}/ban-author/", follow=True)
    assert response.redirect_chain == [("/album/sunset/", 302)]
    assert "@Spammer is banned from #sunset: 2 pictures hidden" in messages_of(response)[0]
    assert (status_of(chosen), status_of(same), status_of(elsewhere)) == (Status.HIDDEN, Status.HIDDEN, Status.VISIBLE)
    block = BlockedAuthor.objects.get()
    assert (block.album, block.source, block.handle, block.created_by) == (album, "x", "spammer", owner)

    page = client.get("/album/sunset/hidden/").content.decode()
    assert "@spammer" in page and f'action="/album/sunset/banned/{block.pk}/unban/"' in page
    client.post(f"/album/sunset/banned/{block.pk}/unban/")
    assert not BlockedAuthor.objects.exists()
    assert status_of(chosen) == Status.HIDDEN  # shown again only one by one
    assert list(ModerationAction.objects.order_by("id").values_list("action", flat=True)) == ["ban", "unban"]


@pytest.mark.parametrize("who", ["anonymous", "other"])
@pytest.mark.parametrize("tool", ["hide", "unhide", "approve", "ban-author"])
def test_strangers_get_a_404_and_nothing_changes(client, other, album, who, tool):
    picture = make_picture(album=album, status=Status.HIDDEN if tool == "unhide" else Status.VISIBLE)
    before = status_of(picture)
    if who == "other":
        client.force_login(other)
    assert client.post(f"/album/sunset/pictures/{picture.pk}/{tool}/").status_code == 404
    assert client.get("/album/sunset/hidden/").status_code == 404
    assert status_of(picture) == before
    assert not ModerationAction.objects.exists() and not BlockedAuthor.objects.exists()


def test_an_owner_cannot_moderate_another_users_album(client, owner, other, album):
    theirs = make_album(owner=other, hashtag="beach")
    their_picture = make_picture(album=theirs)
    client.force_login(owner)
    assert client.post(hide_url(their_picture, "beach")).status_code == 404
    # Nor through their own album's URL.
    assert client.post(hide_url(their_picture, "sunset")).status_code == 404
    assert client.post(f"/album/sunset/pictures/{their_picture.pk}/ban-author/").status_code == 404
    their_block = BlockedAuthor.objects.create(album=theirs, source="x", handle="ana")
    assert client.post(f"/album/sunset/banned/{their_block.pk}/unban/").status_code == 404
    assert client.get("/album/beach/hidden/").status_code == 404
    assert status_of(their_picture) == Status.VISIBLE
    assert BlockedAuthor.objects.count() == 1


def test_staff_may_moderate_any_album(client, staff, album):
    picture = make_picture(album=album)
    client.force_login(staff)
    assert client.post(hide_url(picture)).status_code == 302
    assert status_of(picture) == Status.HIDDEN


@pytest.mark.parametrize(
    "url",
    [
        "/album/nosuch/pictures/1/hide/",
        "/album/not%20a%20tag/pictures/1/hide/",
        "/album/sunset/pictures/999999/hide/",
        "/album/sunset/banned/999999/unban/",
    ],
)
def test_unknown_albums_and_pictures_are_404_not_500(client, owner, album, url):
    client.force_login(owner)
    assert client.post(url).status_code == 404


def test_a_hashtag_in_another_case_still_finds_the_owners_album(client, owner, album):
    picture = make_picture(album=album)
    client.force_login(owner)
    assert client.post(hide_url(picture, "SunSet")).status_code == 302
    assert status_of(picture) == Status.HIDDEN


def test_the_tools_only_answer_post(client, owner, album):
    picture = make_picture(album=album)
    client.force_login(owner)
    assert client.get(hide_url(picture)).status_code == 405
    assert client.post("/album/sunset/hidden/").status_code == 405
    assert status_of(picture) == Status.VISIBLE


def test_the_tools_need_the_csrf_token(owner, album):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    picture = make_picture(album=album)
    assert client.post(hide_url(picture)).status_code == 403
    assert status_of(picture) == Status.VISIBLE


def test_post_data_is_escaped_in_the_tools_and_the_hidden_page(client, owner, album):
    make_picture(album=album, author_handle="evil", author_name=EVIL, alt_text=EVIL)
    make_picture(album=album, author_handle="also_evil", author_name=EVIL, alt_text=EVIL, status=Status.HIDDEN)
    client.force_login(owner)
    for url in ("/album/sunset/", "/album/sunset/hidden/"):
        body = client.get(url).content.decode()
        assert "<img src=x onerror" not in body, url
        assert "&lt;img src=x onerror=alert(1)&gt;" in body, url


def test_the_hidden_page_pages_through_many_pictures(client, owner, album):
    for _ in range(61):
        make_picture(album=album, status=Status.HIDDEN)
    client.force_login(owner)
    first = client.get("/album/sunset/hidden/")
    assert len(first.context["page"].object_list) == 60
    assert 'href="?status=hidden&amp;page=2"' in first.content.decode()
    assert len(client.get("/album/sunset/hidden/?page=2").context["page"].object_list) == 1
    assert client.get("/album/sunset/hidden/?status=bogus&page=zz").status_code == 200


def test_an_owner_blocks_and_unblocks_words_for_their_album(client, owner, other, album):
    from pictures.models import BlockedWord

    client.force_login(owner)
    client.post("/album/sunset/blocked-words/", {"word": "  Spam  Offer "})
    blocked = BlockedWord.objects.get(album=album)
    assert blocked.word == "spam offer"
    assert "spam offer" in client.get("/album/sunset/hidden/").content.decode()
    response = client.post("/album/sunset/blocked-words/", {"word": "!!!"}, follow=True)
    assert "at least one letter or digit" in response.content.decode()
    client.force_login(other)
    assert client.post(f"/album/sunset/blocked-words/{blocked.pk}/remove/").status_code == 404
    assert client.post("/album/sunset/blocked-words/", {"word": "x"}).status_code == 404
    client.force_login(owner)
    client.post(f"/album/sunset/blocked-words/{blocked.pk}/remove/")
    assert not BlockedWord.objects.exists()


def test_a_ban_asks_first_and_says_how_many_pictures_it_hides(client, owner, album):
    chosen = make_picture(album=album, source="x", author_handle="Spammer")
    make_picture(album=album, source="x", author_handle="spammer", status=Status.PENDING)
    make_picture(album=album, source="x", author_handle="spammer", status=Status.HIDDEN)  # hidden already
    client.force_login(owner)
    page = client.get(f"/album/sunset/pictures/{chosen.pk}/ban-author/").content.decode()
    assert "This hides <strong>2 pictures</strong> by @Spammer" in page
    assert status_of(chosen) == Status.VISIBLE and not BlockedAuthor.objects.exists()


def test_lifting_a_ban_shows_again_what_the_ban_hid_in_the_same_step(client, owner, album):
    hidden_before = make_picture(album=album, source="x", author_handle="ana", status=Status.HIDDEN)
    banned = [make_picture(album=album, source="x", author_handle="ana") for _ in range(3)]
    client.force_login(owner)
    client.post(f"/album/sunset/pictures/{banned[0].pk}/ban-author/")
    block = BlockedAuthor.objects.get()
    page = client.get("/album/sunset/hidden/").content.decode()
    assert "Also show again the 3 pictures the ban hid" in page
    response = client.post(f"/album/sunset/banned/{block.pk}/unban/", {"show_again": "on"}, follow=True)
    assert "@ana may appear in #sunset again; 3 pictures shown again." in messages_of(response)
    assert [status_of(p) for p in banned] == [Status.VISIBLE] * 3
    assert status_of(hidden_before) == Status.HIDDEN  # hidden by hand before the ban: stays hidden
