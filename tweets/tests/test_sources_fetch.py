"""fetch_tweets with every source at once: the fake X API, two federating Mastodon instances and a
Bluesky service, all loopback HTTPS, through the real clients, the real command and real storage."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from albums.models import Album
from everhash.testing.builders import make_album, photo_bytes
from everhash.testing.fixtures import fetch_tweets as fetch
from everhash.testing.processes import run_python
from pictures.models import Picture
from tweets.models import AlbumSource, FetchRun, SourcePause


@pytest.fixture
def everywhere(settings, x_settings, fediverse, fake_bluesky):
    """X, two Mastodon instances and Bluesky configured the way an operator would."""
    first, second = fediverse.instances
    settings.EVERHASH_MASTODON_INSTANCES = [first.url, second.url]
    settings.EVERHASH_BLUESKY_API_URL = fake_bluesky.url
    settings.EVERHASH_BLUESKY_HANDLE = fake_bluesky.handle
    settings.EVERHASH_BLUESKY_APP_PASSWORD = fake_bluesky.password
    return first, second


@pytest.fixture
def sunset(owner):
    return make_album(owner=owner, hashtag="sunset", title="Sunsets")


def add_x_photo(fake_x, media_server, name: str, data: bytes, **kwargs) -> str:
    media_server.add(f"/media/{name}", data)
    return fake_x.add_post(photos=[(f"3_{name}", media_server.url(f"/media/{name}"), 800, 600)], **kwargs)


def test_an_album_fills_from_every_source_with_a_part_per_source(
    everywhere, fake_x, media_server, fake_bluesky, sunset
):
    first, second = everywhere
    add_x_photo(fake_x, media_server, "x1", photo_bytes("astronaut.png"))
    first.post(user="ada", images=[photo_bytes("chelsea.png")])
    second.post(user="bob", images=[photo_bytes("coffee.png")])
    fake_bluesky.add_post(author="cy.bsky.social", images=[photo_bytes("rocket.jpg")])

    output = fetch()

    assert "#sunset: ok, 4 added, 0 duplicates" in output
    assert (
        f"X: 1 posts, 1 pictures; {first.netloc}: 1 posts, 1 pictures; {second.netloc}: 1 posts, 1 pictures" in output
    )
    assert f"{fake_bluesky.netloc}: 1 posts, 1 pictures" in output
    by_source = dict(Picture.objects.values_list("author_handle", "source"))
    assert by_source == {
        "someone": "x",
        f"ada@{first.netloc}": "mastodon",
        f"bob@{second.netloc}": "mastodon",
        "cy.bsky.social": "bluesky",
    }
    assert sorted(FetchRun.objects.values_list("source", flat=True)) == sorted(
        ["x", f"mastodon:{first.netloc}", f"mastodon:{second.netloc}", f"bluesky:{fake_bluesky.netloc}"]
    )
    assert set(AlbumSource.objects.filter(album=sunset).values_list("last_status", flat=True)) == {"ok"}


def test_a_rerun_reads_nothing_old_from_any_source(everywhere, fake_x, media_server, fake_bluesky, sunset):
    first, second = everywhere
    first.posts(3)
    fake_bluesky.add_post(images=[photo_bytes("rocket.jpg")])
    fetch()

    output = fetch("--album", "sunset")

    # Nothing is downloaded again (no duplicates: every photo was known by its key). Bluesky's
    # `since` is inclusive, so its newest post comes back once more and is passed over.
    assert "#sunset: ok, 0 added, 0 duplicates, 0 rejected, 0 skipped, 1 posts" in output
    assert f"{fake_bluesky.netloc}: 1 posts, 0 pictures" in output
    assert first.timeline_requests()[-1].params["since_id"]
    assert fake_bluesky.search_requests()[-1].params["since"]


def test_a_status_federated_to_both_instances_is_stored_once(everywhere, sunset):
    first, second = everywhere
    shared = first.post(user="ada", images=[photo_bytes("chelsea.png")])
    second.receive(shared)

    output = fetch()

    assert "#sunset: ok, 1 added, 0 duplicates" in output
    assert Picture.objects.get().post_id == shared
    # The second instance's copy was known by its media key: never downloaded.
    assert sum(second.media.hits.values()) == 0


def test_the_same_photo_on_x_and_mastodon_is_stored_once_and_credited_to_the_earliest(
    everywhere, fake_x, media_server, sunset
):
    first, _ = everywhere
    image = photo_bytes("hubble_deep_field.jpg")
    # Mastodon's copy is re-encoded smaller, as instances do; it was posted an hour earlier.
    first.post(user="ada", images=[photo_bytes("hubble_deep_field.jpg", scale=0.5, quality=80)])
    status_time = first.fediverse.statuses[next(iter(first.fediverse.statuses))].created_at
    add_x_photo(fake_x, media_server, "later", image, created_at=status_time + timedelta(hours=1))

    output = fetch()

    assert "1 added, 1 duplicates" in output
    picture = Picture.objects.get()
    assert (picture.source, picture.author_handle) == ("mastodon", f"ada@{first.netloc}")
    assert picture.posted_at == status_time


def test_an_earlier_copy_found_later_takes_the_credit(everywhere, fake_x, media_server, sunset):
    first, _ = everywhere
    add_x_photo(fake_x, media_server, "x", photo_bytes("retina.jpg"))
    fetch()
    x_picture = Picture.objects.get()
    first.post(
        user="ada", images=[photo_bytes("retina.jpg", fmt="PNG")], created_at=x_picture.posted_at - timedelta(days=1)
    )
    Album.objects.filter(pk=sunset.pk).update(next_fetch_at=None)

    fetch()

    picture = Picture.objects.get()
    assert picture.pk == x_picture.pk and picture.original_key == x_picture.original_key  # same files
    assert (picture.source, picture.author_handle) == ("mastodon", f"ada@{first.netloc}")


def test_an_instance_that_is_down_fails_alone_and_backs_off_alone(everywhere, fake_x, media_server, sunset):
    first, second = everywhere
    second.posts(1, image=lambda n: photo_bytes("coffee.png"))
    first.down = True

    output = fetch()

    assert "#sunset: partial, 1 added" in output  # fetched: exit code 0, the instance named on stderr
    assert f"{first.netloc}: Could not reach {first.netloc}" in output
    rows = {row.key: row for row in AlbumSource.objects.filter(album=sunset)}
    failing = rows[f"mastodon:{first.netloc}"]
    assert failing.failures == 1 and failing.next_fetch_at and failing.last_status == "failed"
    assert rows[f"mastodon:{second.netloc}"].failures == 0
    sunset.refresh_from_db()
    assert sunset.failures == 0  # the album worked

    Album.objects.filter(pk=sunset.pk).update(next_fetch_at=None)
    output = fetch()
    assert f"{first.netloc}: failed 1 times in a row" in output  # not asked while it backs off
    assert len(first.timeline_requests()) == 0


def test_a_rate_limited_source_waits_while_the_others_go_on(everywhere, fake_bluesky, sunset):
    first, _ = everywhere
    first.fail_next("429", retry_after=600)
    fake_bluesky.add_post(images=[photo_bytes("rocket.jpg")])

    output = fetch()

    assert "#sunset: ok, 1 added" in output
    assert f"{first.netloc}: {first.netloc}'s rate limit is used up" in output
    row = AlbumSource.objects.get(album=sunset, key=f"mastodon:{first.netloc}")
    assert row.rate_limited_until is not None and row.failures == 0
    # The instance waits for every album, not only this one; the other instance does not wait.
    assert list(SourcePause.objects.values_list("source", flat=True)) == [f"mastodon:{first.netloc}"]


def test_a_refused_bluesky_password_stops_bluesky_only_and_the_command_says_so(
    everywhere, settings, fake_bluesky, owner, sunset
):
    first, _ = everywhere
    make_album(owner=owner, hashtag="beach")
    first.posts(1, image=lambda n: photo_bytes("coffee.png"))
    settings.EVERHASH_BLUESKY_APP_PASSWORD = "wrong-pass-word-1234"

    out = StringIO()
    with pytest.raises(Exception, match="could not sign in") as failed:
        call_command("fetch_tweets", stdout=out)

    assert type(failed.value).__name__ == "CommandError"
    assert "#sunset: ok, 1 added" in out.getvalue()
    assert len(fake_bluesky.session_requests("create")) == 1  # asked once for the whole run
    assert Album.objects.get(hashtag="beach").failures == 0


def test_the_owner_switching_a_source_off_stops_its_requests(everywhere, fake_x, sunset):
    first, second = everywhere
    fetch()
    AlbumSource.objects.filter(album=sunset, key=f"mastodon:{first.netloc}").update(enabled=False)
    Album.objects.filter(pk=sunset.pk).update(next_fetch_at=None)
    before = len(first.timeline_requests())

    output = fetch()

    assert len(first.timeline_requests()) == before
    assert first.netloc not in output and second.netloc in output


def test_json_lists_each_source_of_each_album(everywhere, sunset):
    first, second = everywhere
    first.posts(2)

    summary = json.loads(fetch("--json"))

    parts = {part["key"]: part for part in summary["albums"][0]["sources"]}
    assert parts[f"mastodon:{first.netloc}"]["posts_seen"] == 2
    assert set(summary["sources"]) == set(parts)


def test_without_credentials_offline_the_sample_album_fills_and_says_why_mastodon_did_not(
    settings, social_settings, fediverse, staff
):
    first, _ = fediverse.instances
    settings.EVERHASH_X_BEARER_TOKEN = ""
    settings.EVERHASH_MASTODON_INSTANCES = [first.url]  # mastodon.social, on a machine with no internet
    first.down = True
    call_command("add_sample_albums", stdout=StringIO())
    make_album(owner=staff, hashtag="ourwedding2026")

    output = fetch("--album", "everhashdemo", "--album", "ourwedding2026")

    assert "#everhashdemo: partial, 114 added" in output  # fetched: the sample worked
    assert "#ourwedding2026: failed, 0 added, 0 duplicates, 0 rejected, 0 skipped, 0 posts" in output
    assert f"{first.netloc}: Could not reach {first.netloc}" in output
    states = {(row.album.hashtag, row.key): row.summary for row in AlbumSource.objects.select_related("album")}
    assert states.pop(("everhashdemo", "sample")) == "123 posts, 114 pictures"
    # X without a token is no source of the run; the sample has nothing for a wedding.
    assert set(states) == {("everhashdemo", f"mastodon:{first.netloc}"), ("ourwedding2026", f"mastodon:{first.netloc}")}
    assert all(summary.startswith(f"failed: Could not reach {first.netloc}") for summary in states.values())


ATPROTO_LOADED = """
import sys
import django
django.setup()
from tweets.registry import run_sources
print(sorted(source.key for source in run_sources()), "atproto" in sys.modules)
"""


@pytest.mark.parametrize("configured", [False, True])
def test_the_slow_atproto_sdk_is_loaded_only_when_bluesky_is_configured(process_env, fake_bluesky, configured):
    env = {**process_env, "EVERHASH_BLUESKY_API_URL": fake_bluesky.url}
    if configured:
        env.update(EVERHASH_BLUESKY_HANDLE=fake_bluesky.handle, EVERHASH_BLUESKY_APP_PASSWORD=fake_bluesky.password)

    output = run_python(env, ATPROTO_LOADED)

    bluesky = f"bluesky:{fake_bluesky.netloc}"
    assert output.strip() == (f"['{bluesky}', 'x'] True" if configured else "['x'] False")


def test_an_album_no_source_would_search_says_so_and_waits_for_the_interval(settings, sunset):
    settings.EVERHASH_X_BEARER_TOKEN = ""  # and no Mastodon instance, no Bluesky account: the tests' default

    output = fetch()

    assert "#sunset: skipped" in output and "No source feeds this album" in output
    sunset.refresh_from_db()
    assert "No source feeds this album" in sunset.last_error
    assert sunset.next_fetch_at > timezone.now() + timedelta(minutes=5)  # not due on every run
    assert not AlbumSource.objects.exists()
