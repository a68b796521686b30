from __future__ import annotations

from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from albums.models import Album
from everhash.lib.qr import qr_svg
from everhash.testing.builders import make_album, make_picture
from pictures.models import Picture
from pictures.moderation import hide


def test_the_index_lists_public_albums_only(client, owner):
    make_picture(album=make_album(owner=owner, hashtag="sunset", title="Sunsets"))
    make_picture(album=make_album(owner=owner, hashtag="secretparty", visibility=Album.Visibility.UNLISTED))
    response = client.get("/")
    assert response.status_code == 200
    assert "Sunsets" in response.content.decode()
    assert "secretparty" not in response.content.decode()


def test_the_album_page_shows_visible_pictures_newest_first(client, album):
    old = make_picture(album=album, author_handle="early_bird")
    new = make_picture(album=album, author_handle="night_owl")
    make_picture(album=album, author_handle="hidden_one", status=Picture.Status.HIDDEN)
    make_picture(album=album, author_handle="pending_one", status=Picture.Status.PENDING)
    body = client.get("/album/sunset/").content.decode()
    assert body.index(f"@{new.author_handle}") < body.index(f"@{old.author_handle}")
    assert "hidden_one" not in body
    assert "pending_one" not in body


def test_an_unknown_hashtag_gives_a_404_page(client, db):
    response = client.get("/album/nosuchtag/")
    assert response.status_code == 404
    assert "No album for #nosuchtag yet" in response.content.decode()


def test_a_non_hashtag_gives_a_404(client, db):
    assert client.get("/album/not%20a%20tag/").status_code == 404


def test_a_hashtag_in_another_case_redirects_to_the_canonical_url(client, album):
    response = client.get("/album/Sunset/")
    assert response.status_code == 301
    assert response["Location"] == "/album/sunset/"


def test_the_redirect_keeps_the_query_string(client, album):
    response = client.get("/album/SUNSET/?page=2")
    assert response["Location"] == "/album/sunset/?page=2"


def test_an_unlisted_album_needs_its_secret_link(client, owner):
    album = make_album(owner=owner, hashtag="hush", visibility=Album.Visibility.UNLISTED)
    assert client.get("/album/hush/").status_code == 404
    assert client.get("/album/hush/?key=wrong").status_code == 404
    assert client.get(f"/album/hush/?key={album.secret}").status_code == 200


def test_post_text_and_names_are_escaped(client, album):
    make_picture(album=album, author_handle="<b>x</b>", alt_text='"><script>alert(1)</script>')
    body = client.get("/album/sunset/").content.decode()
    assert "<script>alert(1)" not in body
    assert "<b>x</b>" not in body
    assert "&lt;script&gt;" in body


def test_pages_of_pictures_link_to_each_other(client, album):
    for _ in range(61):
        make_picture(album=album)
    body = client.get("/album/sunset/").content.decode()
    assert "?page=2" in body
    assert client.get("/album/sunset/?page=2").status_code == 200


def test_a_picture_page_shows_only_a_visible_picture_of_an_album_the_visitor_may_see(client, owner, other, settings):
    album = make_album(owner=owner, hashtag="hush", visibility=Album.Visibility.UNLISTED)
    picture = make_picture(album=album, like_count=1)
    hidden = make_picture(album=album, status=Picture.Status.HIDDEN)
    url = f"/album/hush/p/{picture.pk}/"
    assert client.get(url).status_code == 404  # a stranger without the key
    client.force_login(other)
    assert client.get(url).status_code == 404
    response = client.get(f"{url}?key={album.secret}")
    body = response.content.decode()
    assert response.status_code == 200
    assert "1 like<" in body and "1 likes" not in body
    # Links inside the unlisted album keep its key; the share URL is absolute and carries it too.
    assert f'/album/hush/p/{picture.pk}/download/?key={album.secret}"' in body
    assert f'og:url" content="{settings.EVERHASH_SITE_URL}{url}?key={album.secret}">' in body
    assert client.get(f"/album/hush/p/{hidden.pk}/?key={album.secret}").status_code == 404
    assert client.get(f"/album/HUSH/p/{picture.pk}/").status_code == 301


def test_a_picture_downloads_as_a_file(client, album):
    default_storage.save("renditions/x/large.jpg", ContentFile(b"\xff\xd8large bytes"))
    picture = make_picture(
        album=album, renditions={"large": {"key": "renditions/x/large.jpg", "width": 9, "height": 9}}
    )
    response = client.get(f"/album/sunset/p/{picture.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"] == f'attachment; filename="everhash-sunset-{picture.pk}.jpg"'
    assert response.content == b"\xff\xd8large bytes"
    hide(pictures=Picture.objects.filter(pk=picture.pk), by=album.owner)
    assert client.get(f"/album/sunset/p/{picture.pk}/download/").status_code == 404


def test_only_the_origins_the_owner_lists_may_frame_the_wall(client, owner, album):
    response = client.get("/album/sunset/slideshow/")
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    client.force_login(owner)
    form = {"title": "", "description": "", "frame_origins": "https://example.com/\nhttp://wall.example.org:8080"}
    assert client.post("/accounts/albums/sunset/edit/", form).status_code == 302
    client.logout()
    response = client.get("/album/sunset/slideshow/")
    policy = response["Content-Security-Policy"]
    assert policy.endswith("frame-ancestors https://example.com http://wall.example.org:8080")
    assert "script-src 'self'" in policy  # the rest of the policy is unchanged
    assert not response.has_header("X-Frame-Options")
    # Only the wall: the album page itself still refuses every frame.
    assert "frame-ancestors 'none'" in client.get("/album/sunset/")["Content-Security-Policy"]


def test_an_origin_must_be_an_origin(client, owner, album):
    client.force_login(owner)
    for bad in ("example.com", "https://example.com/path", "javascript:alert(1)", "https://u:p@example.com"):
        response = client.post("/accounts/albums/sunset/edit/", {"frame_origins": bad})
        assert response.status_code == 200 and "is not an origin" in response.content.decode(), bad
    assert Album.objects.get(pk=album.pk).frame_origins == ""


def test_the_owner_gets_an_embed_snippet_and_qr_codes_on_the_album_page(client, owner, album):
    Album.objects.filter(pk=album.pk).update(frame_origins="https://example.com")
    client.force_login(owner)
    body = client.get("/album/sunset/").content.decode()
    assert "&lt;iframe src=&quot;" not in body  # escaped once, as text to copy
    assert '&lt;iframe src="http://127.0.0.1:8000/album/sunset/slideshow/"' in body
    assert 'src="/album/sunset/qr.svg"' in body and 'src="/album/sunset/qr.svg?for=wall"' in body
    client.logout()
    assert "/album/sunset/qr.svg" not in client.get("/album/sunset/").content.decode()


def test_an_unlisted_albums_embed_snippet_carries_its_key_and_a_public_ones_does_not(client, owner, album):
    hush = make_album(owner=owner, hashtag="hush", visibility=Album.Visibility.UNLISTED)
    Album.objects.update(frame_origins="https://example.com")  # the snippet shows once an origin may frame it
    client.force_login(owner)
    unlisted = client.get(f"/album/hush/?key={hush.secret}").content.decode()
    public = client.get("/album/sunset/").content.decode()
    assert f'&lt;iframe src="http://127.0.0.1:8000/album/hush/slideshow/?key={hush.secret}"' in unlisted
    assert '&lt;iframe src="http://127.0.0.1:8000/album/sunset/slideshow/"' in public


def test_the_qr_code_encodes_the_album_or_its_wall(client, owner, settings):
    hush = make_album(owner=owner, hashtag="hush", visibility=Album.Visibility.UNLISTED)
    assert client.get("/album/hush/qr.svg").status_code == 404
    response = client.get(f"/album/hush/qr.svg?key={hush.secret}&for=wall")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    wall = f"{settings.EVERHASH_SITE_URL}/album/hush/slideshow/?key={hush.secret}"
    assert response.content == qr_svg(wall, title=f"QR code of the wall #hush: {wall}")
    assert client.get(f"/album/hush/qr.svg?key={hush.secret}&for=nothing").status_code == 404


def test_owners_switch_approve_first_and_see_what_awaits_approval(client, owner, album):
    make_picture(album=album, status=Picture.Status.PENDING)
    make_picture(album=album, status=Picture.Status.PENDING)
    client.force_login(owner)
    assert "<strong>2</strong> pictures await approval" in client.get("/album/sunset/").content.decode()
    assert "<strong>2</strong> await approval" in client.get("/accounts/albums/").content.decode()
    response = client.post("/accounts/albums/sunset/moderation/", {"moderation": "approve", "next": "/album/sunset/"})
    assert response["Location"] == "/album/sunset/"
    assert Album.objects.get(pk=album.pk).moderation == Album.Moderation.APPROVE_FIRST
    client.post("/accounts/albums/sunset/moderation/", {"moderation": "automatic"})
    assert Album.objects.get(pk=album.pk).moderation == Album.Moderation.AUTOMATIC
    assert client.post("/accounts/albums/sunset/moderation/", {"moderation": "bogus"}).status_code == 404


def test_a_stranger_cannot_switch_moderation(client, other, album):
    client.force_login(other)
    assert client.post("/accounts/albums/sunset/moderation/", {"moderation": "approve"}).status_code == 404
    assert Album.objects.get(pk=album.pk).moderation == Album.Moderation.AUTOMATIC


def test_an_empty_album_says_when_it_was_searched_what_came_back_and_what_the_owner_can_do(client, owner):
    album = make_album(owner=owner, hashtag="quiet", next_fetch_at=timezone.now() + timedelta(minutes=12))
    body = client.get("/album/quiet/").content.decode()
    assert "Not searched yet" in body and "The next search runs" in body
    started = timezone.now() - timedelta(minutes=8)
    album.fetch_runs.create(started=started, finished=started, posts_seen=3, duplicates=1, skipped=2)
    Album.objects.filter(pk=album.pk).update(last_fetch_at=started)
    make_picture(album=album, status=Picture.Status.PENDING)
    body = client.get("/album/quiet/").content.decode()
    assert "Last searched <time" in body and "for posts with #quiet" in body
    assert "3 posts came back: 0 pictures added, 1 duplicate, 2 posts left out by moderation rules." in body
    assert "What you can do" not in body  # a visitor is told when pictures come, not the owner's tools
    client.force_login(owner)
    body = client.get("/album/quiet/").content.decode()
    assert "What you can do" in body
    assert "Approve the 1 picture waiting for you" in body


def test_someone_elses_zip_gets_a_friendly_403_in_the_site_layout(client, other, album):
    client.force_login(other)
    response = client.get("/album/sunset/download.zip")
    body = response.content.decode()
    assert response.status_code == 403
    assert "Only an album's owner (or staff) can change or download it." in body
    assert 'class="site-header"' in body
