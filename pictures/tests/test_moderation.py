"""pictures/moderation.py: each action's effect on every surface, the audit log, files, milestones."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from albums.models import Album, Milestone
from albums.services import pictures_changed, record_milestones
from collages import builder
from collages.models import Collage
from collages.services import build_collage, candidates, fingerprint
from everhash.testing.builders import (
    make_album,
    make_coloured_pictures,
    make_picture,
    make_stored_picture,
    stored_keys,
)
from pictures import moderation
from pictures.models import (
    BlockedAuthor,
    BlockedWord,
    DeletedMedia,
    ModerationAction,
    Picture,
    Takedown,
)

Status = Picture.Status


@pytest.fixture(autouse=True)
def _no_api_page_cache(settings):
    # The API reuses a rendered page for EVERHASH_API_CACHE_SECONDS (5 s by default, see
    # pictures/api.py); these tests look at what a moderation action changes, not at that cache.
    settings.EVERHASH_API_CACHE_SECONDS = 0
    cache.clear()


def surfaces(client, album: Album, owner) -> dict[str, set[str]]:
    """The authors each surface shows: the album page, popular, slideshow feed, zip, API, and the count."""
    client.logout()
    handles = set(Picture.objects.values_list("author_handle", flat=True))
    page = client.get(f"/album/{album.hashtag}/")
    popular = client.get(f"/album/{album.hashtag}/popular/").content.decode()
    feed = client.get(f"/album/{album.hashtag}/feed.json").json()["pictures"]
    api = client.get(f"/api/v1/albums/{album.hashtag}/pictures/").json()["results"]
    client.force_login(owner)
    archive = zipfile.ZipFile(
        io.BytesIO(b"".join(client.get(f"/album/{album.hashtag}/download.zip").streaming_content))
    )
    manifest = list(csv.reader(io.StringIO(archive.read(f"{album.hashtag}/manifest.csv").decode())))[1:]
    client.logout()
    body = page.content.decode()
    return {
        "page": {h for h in handles if f"@{h}<" in body},
        "popular": {h for h in handles if f"@{h}<" in popular},
        "feed": {p["author_handle"] for p in feed},
        "api": {p["author_handle"] for p in api},
        "zip": {row[1].removeprefix("@") for row in manifest},
        "count": {str(page.context["count"])},
    }


def shows(client, album, owner, expected: set[str]) -> None:
    seen = surfaces(client, album, owner)
    assert seen.pop("count") == {str(len(expected))}
    for surface, authors in seen.items():
        assert authors == expected, surface


@pytest.fixture
def three(album):
    """Three visible pictures by ana, bob and cy, files stored; the collage is up to date."""
    pictures = [
        make_stored_picture(album, "astronaut.png", handle="ana", post_id="11"),
        make_stored_picture(album, "coffee.png", handle="bob", post_id="12"),
        make_stored_picture(album, "rocket.jpg", handle="cy", post_id="13"),
    ]
    Album.objects.filter(pk=album.pk).update(collage_stale=False)
    return pictures


def stale(album: Album) -> bool:
    return Album.objects.values_list("collage_stale", flat=True).get(pk=album.pk)


def one(picture: Picture):
    return Picture.objects.filter(pk=picture.pk)


# --- Every surface at once -------------------------------------------------------------------------


def test_hiding_removes_a_picture_from_every_surface_and_unhiding_brings_it_back(client, owner, staff, album, three):
    ana, bob, cy = three
    shows(client, album, owner, {"ana", "bob", "cy"})
    assert moderation.hide(pictures=one(bob), by=staff) == 1
    shows(client, album, owner, {"ana", "cy"})
    assert stale(album)
    assert default_storage.exists(bob.original_key)  # hidden, not deleted

    Album.objects.filter(pk=album.pk).update(collage_stale=False)
    assert moderation.unhide(pictures=one(bob), by=staff) == 1
    shows(client, album, owner, {"ana", "bob", "cy"})
    assert stale(album)


def test_deleting_removes_the_picture_and_its_files_everywhere(client, owner, staff, album, three):
    ana, bob, cy = three
    assert moderation.delete(pictures=one(bob), by=staff) == 1
    shows(client, album, owner, {"ana", "cy"})
    assert not Picture.objects.filter(pk=bob.pk).exists()
    assert not any(default_storage.exists(key) for key in stored_keys(bob))
    assert all(default_storage.exists(key) for key in stored_keys(ana))
    assert stale(album)
    assert DeletedMedia.objects.filter(album=album, source="x", media_key=bob.media_key).exists()


def test_files_shared_with_another_album_stay_until_the_last_copy_goes(owner, staff, album):
    beach = make_album(owner=owner, hashtag="beach")
    here = make_stored_picture(album, "chelsea.png", post_id="21")
    there = make_stored_picture(beach, "chelsea.png", post_id="21")
    assert here.original_key == there.original_key
    moderation.delete(pictures=one(here), by=staff)
    assert all(default_storage.exists(key) for key in stored_keys(there))
    moderation.delete(pictures=one(there), by=staff)
    assert not any(default_storage.exists(key) for key in stored_keys(there))


def test_approving_pending_pictures_shows_them_everywhere(client, owner, staff, album, three):
    ana, bob, cy = three
    Picture.objects.filter(pk__in=[bob.pk, cy.pk]).update(status=Status.PENDING)
    pictures_changed(album_ids=[album.pk])  # as the fetch that held them for review would
    shows(client, album, owner, {"ana"})
    assert moderation.approve(pictures=album.pictures.all(), by=staff) == 2
    shows(client, album, owner, {"ana", "bob", "cy"})
    assert stale(album)


def test_banning_an_author_hides_their_pictures_everywhere(client, owner, staff, album, three):
    make_stored_picture(album, "retina.jpg", handle="BOB", post_id="14")  # handles match whatever the case
    block, hidden = moderation.ban_author(source="x", handle="@Bob", album=album, by=staff, reason="spam")
    assert hidden == 2
    assert (block.album, block.source, block.handle, block.reason) == (album, "x", "bob", "spam")
    shows(client, album, owner, {"ana", "cy"})
    assert stale(album)


def test_a_takedown_deletes_the_post_everywhere(client, owner, staff, album, three):
    ana, bob, cy = three
    record, deleted = moderation.takedown(post=f"https://twitter.com/bob/status/{bob.post_id}?s=20", by=staff)
    assert deleted == 1
    assert (record.source, record.post_id) == ("x", bob.post_id)
    shows(client, album, owner, {"ana", "cy"})
    assert not any(default_storage.exists(key) for key in stored_keys(bob))


# --- Each action, in detail ---------------------------------------------------------------------------


def test_actions_only_move_pictures_from_the_states_they_apply_to(staff, album):
    visible = make_picture(album=album)
    hidden = make_picture(album=album, status=Status.HIDDEN)
    pending = make_picture(album=album, status=Status.PENDING)
    everything = album.pictures.all()
    assert moderation.approve(pictures=everything, by=staff) == 1  # the pending one
    pending.refresh_from_db()
    hidden.refresh_from_db()
    assert (pending.status, hidden.status) == (Status.VISIBLE, Status.HIDDEN)
    assert moderation.unhide(pictures=everything, by=staff) == 1
    assert moderation.hide(pictures=everything, by=staff) == 3
    assert moderation.hide(pictures=everything, by=staff) == 0
    assert set(everything.values_list("status", flat=True)) == {Status.HIDDEN}
    assert {visible.pk, hidden.pk, pending.pk} == set(everything.values_list("pk", flat=True))


def test_an_action_that_changes_nothing_writes_no_audit_row_and_leaves_the_collage(staff, album):
    picture = make_picture(album=album, status=Status.HIDDEN)
    assert moderation.hide(pictures=one(picture), by=staff) == 0
    assert moderation.approve(pictures=one(picture), by=staff) == 0
    assert not ModerationAction.objects.exists()
    assert not stale(album)


def test_every_action_is_in_the_audit_log_with_who_what_and_where(staff, owner, album):
    beach = make_album(owner=owner, hashtag="beach")
    a = make_picture(album=album, author_handle="ana", status=Status.PENDING)
    b = make_picture(album=beach, author_handle="ana")
    c = make_picture(album=album, author_handle="bob", post_id="777")
    moderation.approve(pictures=one(a), by=staff)
    moderation.hide(pictures=Picture.objects.filter(pk__in=[a.pk, b.pk]), by=owner)
    moderation.unhide(pictures=one(b), by=None)
    moderation.delete(pictures=one(a), by=staff)
    moderation.ban_author(source="sample", handle="ana", album=None, by=staff)
    moderation.unban_author(source="sample", handle="ana", by=staff)
    moderation.takedown(post="777", source="sample", by=staff, reason="DMCA")
    moderation.block_word(word="Spoiler Alert", album=album, by=owner)
    moderation.unblock_word(word="spoiler  alert", album=album, by=owner)
    moderation.pause(albums=Album.objects.filter(pk=album.pk), by=staff)
    moderation.resume(albums=Album.objects.filter(pk=album.pk), by=staff)

    rows = list(ModerationAction.objects.order_by("id").values_list("user__email", "action", "hashtag", "picture_ids"))
    s, o = staff.email, owner.email
    assert rows == [
        (s, "approve", "sunset", [a.pk]),
        (o, "hide", "sunset", [a.pk]),  # one row per album
        (o, "hide", "beach", [b.pk]),
        (None, "unhide", "beach", [b.pk]),
        (s, "delete", "sunset", [a.pk]),
        (s, "ban", "", [b.pk]),  # every album: b was the only one still visible
        (s, "unban", "", []),
        (s, "takedown", "", [c.pk]),
        (o, "block_word", "sunset", []),
        (o, "unblock_word", "sunset", []),
        (s, "pause", "sunset", []),
        (s, "resume", "sunset", []),
    ]
    ban = ModerationAction.objects.get(action="ban")
    assert (ban.source, ban.handle, ban.count) == ("sample", "ana", 1)
    assert "#beach" in ban.detail
    takedown = ModerationAction.objects.get(action="takedown")
    assert (takedown.post_id, takedown.count) == ("777", 1)
    assert "DMCA" in takedown.detail and "#sunset" in takedown.detail
    assert ModerationAction.objects.get(action="block_word").detail == "spoiler alert"


def test_the_audit_row_outlives_its_album_and_its_block_lists_do_not(staff, album):
    moderation.hide(pictures=one(make_picture(album=album)), by=staff)
    moderation.ban_author(source="x", handle="ana", album=album, by=staff)
    moderation.block_word(word="boo", album=album, by=staff)
    moderation.block_word(word="boo", album=None, by=staff)
    album.delete()
    assert not BlockedAuthor.objects.exists()
    assert list(BlockedWord.objects.values_list("album", "word")) == [(None, "boo")]
    action = ModerationAction.objects.filter(action="hide").get()
    assert (action.album, action.hashtag) == (None, "sunset")
    assert "#sunset" in str(action)


def test_a_ban_from_one_album_leaves_the_author_alone_elsewhere(staff, owner, album):
    beach = make_album(owner=owner, hashtag="beach")
    here = make_picture(album=album, source="x", author_handle="Spammer")
    there = make_picture(album=beach, source="x", author_handle="spammer")
    other_source = make_picture(album=album, source="sample", author_handle="spammer")
    _, hidden = moderation.ban_author(source="x", handle="SPAMMER", album=album, by=staff)
    assert hidden == 1
    statuses = dict(Picture.objects.values_list("pk", "status"))
    assert statuses == {here.pk: Status.HIDDEN, there.pk: Status.VISIBLE, other_source.pk: Status.VISIBLE}
    assert stale(album) and not stale(beach)


def test_a_ban_from_every_album_hides_the_author_in_all_of_them(staff, owner, album):
    beach = make_album(owner=owner, hashtag="beach")
    make_picture(album=album, source="x", author_handle="spammer")
    make_picture(album=beach, source="x", author_handle="spammer", status=Status.PENDING)
    _, hidden = moderation.ban_author(source="x", handle="spammer", album=None, by=staff)
    assert hidden == 2
    assert set(Picture.objects.values_list("status", flat=True)) == {Status.HIDDEN}
    assert stale(album) and stale(beach)
    assert BlockedAuthor.objects.get().album is None


def test_banning_twice_keeps_one_block(staff, album):
    for _ in range(2):
        moderation.ban_author(source="x", handle="spammer", album=album, by=staff)
        moderation.ban_author(source="x", handle="@Spammer", album=None, by=staff)
    assert BlockedAuthor.objects.count() == 2


def test_the_database_refuses_a_second_global_block_of_the_same_author(db):
    BlockedAuthor.objects.create(source="x", handle="spammer")
    with pytest.raises(IntegrityError), transaction.atomic():
        BlockedAuthor.objects.create(source="x", handle="spammer")
    BlockedWord.objects.create(word="spoiler")
    with pytest.raises(IntegrityError), transaction.atomic():
        BlockedWord.objects.create(word="spoiler")


def test_the_database_refuses_a_second_block_in_the_same_album(album):
    BlockedAuthor.objects.create(album=album, source="x", handle="spammer")
    with pytest.raises(IntegrityError), transaction.atomic():
        BlockedAuthor.objects.create(album=album, source="x", handle="spammer")


def test_unbanning_lifts_the_block_but_leaves_pictures_hidden(staff, album):
    picture = make_picture(album=album, source="x", author_handle="ana")
    moderation.ban_author(source="x", handle="ana", album=album, by=staff)
    assert moderation.unban_author(source="x", handle="@ANA", album=album, by=staff) == 1
    assert not BlockedAuthor.objects.exists()
    picture.refresh_from_db()
    assert picture.status == Status.HIDDEN
    assert moderation.unban_author(source="x", handle="ana", album=album, by=staff) == 0


@pytest.mark.parametrize("handle", ["", "@", "two words", "a/b"])
def test_a_ban_needs_a_handle(staff, album, handle):
    with pytest.raises(moderation.ModerationError):
        moderation.ban_author(source="x", handle=handle, album=album, by=staff)
    assert not BlockedAuthor.objects.exists()


@pytest.mark.parametrize(
    ("reference", "post_id"),
    [
        ("1850000000000000001", "1850000000000000001"),
        (" 1850000000000000001 ", "1850000000000000001"),
        ("https://x.com/ana/status/1850000000000000001", "1850000000000000001"),
        ("https://twitter.com/ana/status/1850000000000000001/photo/1", "1850000000000000001"),
        ("http://mobile.twitter.com/Ana_B/statuses/42?s=20&t=abc", "42"),
        ("x.com/i/web/status/43", "43"),
        ("https://www.x.com/ana/status/44#top", "44"),
    ],
)
def test_a_post_is_named_by_its_id_or_its_link(reference, post_id):
    assert moderation.parse_post_reference(reference) == post_id


@pytest.mark.parametrize(
    "reference",
    ["", "abc", "https://example.com/ana/status/1", "https://x.com/ana", "https://x.com.evil.test/a/status/1", "1e5"],
)
def test_anything_else_is_refused_with_a_message(reference):
    with pytest.raises(moderation.ModerationError, match="post id"):
        moderation.parse_post_reference(reference)


def test_a_takedown_deletes_the_post_in_every_album_and_is_recorded_once(staff, owner, album):
    beach = make_album(owner=owner, hashtag="beach")
    first = make_stored_picture(album, "hubble_deep_field.jpg", post_id="900", media_key="3_a")
    second = make_stored_picture(album, "retina.jpg", post_id="900", media_key="3_b")
    elsewhere = make_stored_picture(beach, "hubble_deep_field.jpg", post_id="900", media_key="3_a")
    kept = make_stored_picture(album, "coffee.png", post_id="901")
    Album.objects.update(collage_stale=False)
    _, deleted = moderation.takedown(post="https://x.com/ana/status/900", by=staff, reason="copyright")
    assert deleted == 3
    assert list(Picture.objects.values_list("pk", flat=True)) == [kept.pk]
    for picture in (first, second, elsewhere):
        assert not any(default_storage.exists(key) for key in stored_keys(picture))
    assert stale(album) and stale(beach)
    again, deleted = moderation.takedown(post="900", by=staff)
    assert deleted == 0
    assert Takedown.objects.get() == again
    assert again.reason == "copyright" and again.created_by == staff


def test_lifting_a_takedown_is_logged(staff):
    record, _ = moderation.takedown(post="900", by=staff)
    moderation.lift_takedown(takedown=record, by=staff)
    assert not Takedown.objects.exists()
    assert ModerationAction.objects.filter(action="lift_takedown", post_id="900").exists()


def test_blocked_words_are_stored_lowercased_once(staff, album):
    first = moderation.block_word(word="  Spoiler\tALERT ", album=album, by=staff)
    again = moderation.block_word(word="spoiler alert", album=album, by=staff)
    assert first == again and first.word == "spoiler alert"
    assert moderation.block_word(word="spoiler alert", album=None, by=staff) != first
    assert BlockedWord.objects.count() == 2
    assert ModerationAction.objects.filter(action="block_word").count() == 2


@pytest.mark.parametrize("word", ["", "   ", "!!!", "x" * 101])
def test_a_blocked_word_needs_a_letter_or_digit_and_a_sane_length(staff, album, word):
    with pytest.raises(moderation.ModerationError):
        moderation.block_word(word=word, album=album, by=staff)


def test_pausing_and_resuming_albums(staff, owner, album):
    beach = make_album(owner=owner, hashtag="beach", is_active=False)
    assert moderation.pause(albums=Album.objects.all(), by=staff) == 1
    assert not Album.objects.filter(is_active=True).exists()
    assert moderation.resume(albums=Album.objects.all(), by=staff) == 2
    assert Album.objects.filter(is_active=True).count() == 2
    assert beach.hashtag in ModerationAction.objects.filter(action="resume").values_list("hashtag", flat=True)


# --- Milestones count visible pictures only ---------------------------------------------------------


def test_hidden_and_pending_pictures_do_not_reach_milestones_until_approved(settings, staff, album):
    settings.EVERHASH_MILESTONES = [3]
    make_picture(album=album)
    pending = [make_picture(album=album, status=Status.PENDING) for _ in range(2)]
    hidden = make_picture(album=album, status=Status.HIDDEN)
    assert record_milestones(album=album) == []
    moderation.approve(pictures=one(pending[0]), by=staff)
    assert not Milestone.objects.exists()
    moderation.unhide(pictures=one(hidden), by=staff)
    milestone = Milestone.objects.get()  # recorded now, announced by the next fetch_tweets run
    assert (milestone.threshold, milestone.count, milestone.notified_at) == (3, 3, None)
    moderation.approve(pictures=one(pending[1]), by=staff)
    assert Milestone.objects.count() == 1


def test_hiding_pictures_never_unrecords_a_milestone(settings, staff, album):
    settings.EVERHASH_MILESTONES = [2]
    pictures = [make_picture(album=album) for _ in range(2)]
    record_milestones(album=album)
    moderation.hide(pictures=Picture.objects.filter(pk__in=[p.pk for p in pictures]), by=staff)
    assert Milestone.objects.count() == 1
    assert album.pictures.visible().count() == 0


# --- The fetch's policy ---------------------------------------------------------------------------


def policy(album, source="x"):
    return moderation.Policy.for_album(album, source=source)


def test_the_policy_holds_this_albums_blocks_and_the_global_ones(owner, album):
    beach = make_album(owner=owner, hashtag="beach")
    BlockedAuthor.objects.create(album=album, source="x", handle="local")
    BlockedAuthor.objects.create(album=None, source="x", handle="everywhere")
    BlockedAuthor.objects.create(album=beach, source="x", handle="elsewhere")
    BlockedAuthor.objects.create(album=album, source="sample", handle="othersource")
    Takedown.objects.create(source="x", post_id="5")
    loaded = policy(album)
    assert loaded.blocked_handles == {"local", "everywhere"}
    assert loaded.is_blocked_author("@Local") and loaded.is_blocked_author("EVERYWHERE")
    assert not loaded.is_blocked_author("elsewhere")
    assert loaded.is_taken_down("5") and not policy(album, "sample").is_taken_down("5")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("What a SPOILER today", "SPOILER"),
        ("spoiler!", "spoiler"),
        ("#spoiler at the beach", "spoiler"),
        ("spoilers everywhere", None),
        ("nospoiler", None),
        ("Bad\nWord here", "Bad\nWord"),
        ("bad words", None),
        ("Ärger im Paradies", "Ärger"),
        ("", None),
    ],
)
def test_blocked_words_match_whole_words_and_phrases_whatever_the_case(staff, album, text, found):
    moderation.block_word(word="spoiler", album=album, by=staff)
    moderation.block_word(word="bad word", album=None, by=staff)
    moderation.block_word(word="ärger", album=album, by=staff)
    moderation.block_word(word="other album", album=make_album(owner=staff, hashtag="beach"), by=staff)
    assert policy(album).blocked_word(text) == found


def test_words_with_regex_characters_are_taken_literally(staff, album):
    moderation.block_word(word="a.b (c)", album=album, by=staff)
    assert policy(album).blocked_word("say a.b (c) now") == "a.b (c)"
    assert policy(album).blocked_word("say axb (c) now") is None


def test_the_policy_knows_the_photos_deleted_from_this_album(staff, owner, album):
    beach = make_album(owner=owner, hashtag="beach")
    moderation.delete(pictures=one(make_picture(album=album, source="x", media_key="3_gone")), by=staff)
    moderation.delete(pictures=one(make_picture(album=beach, source="x", media_key="3_there")), by=staff)
    assert policy(album).deleted_media == {"3_gone"}


def test_the_moderation_models_read_well_in_the_admin(staff, album):
    block, _ = moderation.ban_author(source="x", handle="ana", album=album, by=staff)
    assert str(block) == "@ana (X (Twitter)) blocked from #sunset"
    assert str(moderation.block_word(word="Boo", by=staff)) == "'boo' blocked in every album"
    assert str(moderation.takedown(post="12", by=staff)[0]) == "Takedown of X (Twitter) post 12"
    moderation.delete(pictures=one(make_picture(album=album, media_key="3_9")), by=staff)
    assert str(DeletedMedia.objects.get()) == "3_9 deleted from #sunset"


# --- The cover follows at once ----------------------------------------------------------------


def shows_only_visible_pictures(collage: Collage) -> bool:
    """The collage shows exactly the album's best visible pictures, in order (its fingerprint)."""
    return collage.fingerprint == fingerprint(candidates(album=collage.album)[: builder.MAX_PICTURES])


def test_hiding_a_picture_shown_in_the_collage_rebuilds_the_cover_at_once(client, owner):
    album = make_album(owner=owner, hashtag="covered")
    shown = make_coloured_pictures(album, 3)
    old = build_collage(album=album)
    client.force_login(owner)
    response = client.post(f"/album/covered/pictures/{shown[0].pk}/hide/")
    assert response.status_code == 302
    collage = Collage.objects.get(album=album)
    assert collage.image_key != old.image_key
    assert collage.picture_count == 2
    assert shows_only_visible_pictures(collage)
    page = client.get("/album/covered/").content.decode()
    assert old.image_key not in page
    assert collage.image_key in page


def test_deleting_a_picture_shown_in_the_collage_rebuilds_the_cover(owner, staff):
    album = make_album(owner=owner, hashtag="covered")
    shown = make_coloured_pictures(album, 3)
    old = build_collage(album=album)
    moderation.delete(pictures=Picture.objects.filter(pk=shown[1].pk), by=staff)
    collage = Collage.objects.get(album=album)
    assert collage.image_key != old.image_key
    assert shows_only_visible_pictures(collage)


def test_hiding_a_picture_the_collage_does_not_show_leaves_it_alone(owner):
    album = make_album(owner=owner, hashtag="covered")
    pictures = make_coloured_pictures(album, builder.MAX_PICTURES + 1)
    old = build_collage(album=album)
    moderation.hide(pictures=Picture.objects.filter(pk=pictures[-1].pk), by=owner)
    collage = Collage.objects.get(album=album)
    assert (collage.image_key, collage.built_at) == (old.image_key, old.built_at)
