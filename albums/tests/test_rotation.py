"""Rotating an unlisted album's secret link ends the followers' access; unfollowing always works."""

from __future__ import annotations

from albums.models import Album, Follower
from albums.services import follow, milestone_recipients
from everhash.testing.builders import make_album


def unlisted(owner) -> Album:
    return make_album(owner=owner, hashtag="hush", visibility=Album.Visibility.UNLISTED)


def test_rotating_the_link_ends_the_followers_access_and_tells_the_owner(client, owner, other):
    album = unlisted(owner)
    follow(album=album, user=other)
    old = album.secret
    client.force_login(owner)
    response = client.post("/accounts/albums/hush/rotate-link/", follow=True)
    assert "1 follower no longer sees it" in response.content.decode()
    album.refresh_from_db()
    assert album.secret != old
    assert not Follower.objects.filter(album=album).exists()
    assert milestone_recipients(album=album) == [owner.email]
    # The owner's own link carries the new key.
    assert f"/album/hush/?key={album.secret}" in client.get("/accounts/albums/").content.decode()
    client.force_login(other)
    assert "#hush" not in client.get("/accounts/albums/").content.decode()
    assert client.get(f"/album/hush/?key={old}").status_code == 404


def test_a_follower_can_always_unfollow(client, owner, other):
    album = unlisted(owner)
    follow(album=album, user=other)
    client.force_login(other)
    # No key (or an old one): the album is hidden from them, but leaving it still works.
    response = client.post("/album/hush/follow/", {"follow": "0"})
    assert response.status_code == 302
    assert not Follower.objects.filter(album=album, user=other).exists()


def test_following_still_needs_the_album_to_be_visible(client, owner, other):
    unlisted(owner)
    client.force_login(other)
    assert client.post("/album/hush/follow/").status_code == 404
    assert not Follower.objects.exists()
