"""Media on S3, end to end: the real S3Storage (django-storages + boto3) against moto's S3 server
on 127.0.0.1, fed by the real fetch_tweets against the HTTPS fake X API and media server."""

from __future__ import annotations

import io
import os
import re
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from albums.models import Album
from collages.models import Collage
from everhash.testing.builders import album_source, make_album, make_picture, photo_bytes
from everhash.testing.fixtures import fetch_tweets, use_s3
from everhash.testing.processes import manage
from everhash.testing.s3_server import S3Server, settings_from_env
from pictures import moderation
from pictures.models import Picture
from pictures.services import delete_album
from pictures.storage import modified_time, signed_url_window, store_file
from tweets.models import FetchRun

CACHE_CONTROL = "public, max-age=31536000, immutable"


def add_photo(fake_x, media_server, name: str, data: bytes, **kwargs) -> str:
    media_server.add(f"/media/{name}", data)
    return fake_x.add_post(photos=[(f"3_{name}", media_server.url(f"/media/{name}"), 800, 600)], **kwargs)


def keys_of(picture: Picture) -> set[str]:
    return {picture.original_key, *(r["key"] for r in picture.renditions.values())}


def referenced() -> set[str]:
    keys = set().union(*(keys_of(p) for p in Picture.objects.all()))
    for collage in Collage.objects.all():
        keys |= {collage.image_key, collage.square_key, collage.small_key}
    return keys


class Calls:
    """The S3 operations default_storage makes, seen through botocore's own event hooks."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.after_put = None
        client = default_storage.connection.meta.client
        client.meta.events.register("provide-client-params.s3.*", self._record)
        client.meta.events.register("after-call.s3.PutObject", self._put_done)

    def _record(self, params, model, **kwargs):
        self.calls.append((model.name, dict(params)))

    def _put_done(self, **kwargs):
        if self.after_put is not None:
            self.after_put(sum(1 for name, _ in self.calls if name == "PutObject"))

    def named(self, name: str) -> list[dict]:
        return [params for op, params in self.calls if op == name]


# Settings.


def test_settings_make_a_private_bucket_with_signed_urls_from_the_environment():
    server = S3Server(port=9)  # not started: only its environment is used
    values = server.django_settings()
    assert values["STORAGES_DEFAULT"] == {"BACKEND": "storages.backends.s3.S3Storage"}
    assert values["AWS_DEFAULT_ACL"] is None
    assert values["AWS_QUERYSTRING_AUTH"] is True and values["AWS_QUERYSTRING_EXPIRE"] == 3600
    assert values["AWS_S3_CLIENT_CONFIG"].signature_version == "s3v4"
    assert values["AWS_S3_OBJECT_PARAMETERS"] == {"CacheControl": CACHE_CONTROL}

    cdn = server.django_settings(EVERHASH_S3_CDN_DOMAIN="cdn.example.test")
    assert cdn["AWS_S3_CUSTOM_DOMAIN"] == "cdn.example.test" and cdn["AWS_QUERYSTRING_AUTH"] is False

    role = server.django_settings(EVERHASH_S3_ACCESS_KEY_ID="", EVERHASH_S3_SECRET_ACCESS_KEY="")
    assert role["AWS_ACCESS_KEY_ID"] is None and role["AWS_SECRET_ACCESS_KEY"] is None  # the instance role

    with pytest.raises(ImproperlyConfigured, match="EVERHASH_S3_URL_LIFETIME"):
        settings_from_env({**server.env, "EVERHASH_S3_URL_LIFETIME": "700000"})
    local = settings_from_env({"EVERHASH_S3_BUCKET": ""})
    assert local["STORAGES"]["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"


# Ingest.


def test_a_fetch_stores_every_object_privately_with_our_content_type_and_long_cache(
    s3, x_settings, fake_x, media_server, album
):
    calls = Calls()
    add_photo(fake_x, media_server, "a.png", photo_bytes("chelsea.png", fmt="PNG"))
    add_photo(fake_x, media_server, "b.jpg", photo_bytes("rocket.jpg"))
    assert "2 added" in fetch_tweets()

    stored = s3.object_keys()
    assert stored == referenced()
    assert {key.split("/")[0] for key in stored} == {"originals", "renditions", "collages"}
    client = s3.client()
    for key in stored:
        head = client.head_object(Bucket=s3.bucket, Key=key)
        expected = "image/png" if key.endswith(".png") else "image/jpeg"
        assert (key, head["ContentType"]) == (key, expected)
        assert head["CacheControl"] == CACHE_CONTROL
        grants = client.get_object_acl(Bucket=s3.bucket, Key=key)["Grants"]
        assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]  # the owner only
    assert any(key.endswith(".png") for key in stored)
    puts = calls.named("PutObject")
    assert len(puts) == len(stored)  # each object written once
    assert not any("ACL" in params for params in puts)
    assert not [op for op, _ in calls.calls if "Acl" in op]


def test_an_existing_old_object_is_written_again_so_prune_sees_it_in_use(s3):
    key = "originals/ab/" + "ab" * 32 + ".jpg"
    store_file(key, b"\xff\xd8 bytes")
    first = modified_time(key)
    assert modified_time("originals/ab/missing.jpg") is None
    # S3 overwrites: every store_file is one PUT (no HEAD first), so a young key is written again
    # too and its time can move by the second it took; an old one must move past the prune grace.
    with time_machine.travel(timezone.now() + timedelta(hours=2), tick=False):
        store_file(key, b"\xff\xd8 bytes")  # moto runs in this process: its clock moved too
        assert modified_time(key) > first + timedelta(hours=1)


# Serving.


def test_pages_and_the_api_serve_signed_urls_that_return_the_bytes(s3, x_settings, fake_x, media_server, album, client):
    add_photo(fake_x, media_server, "b.jpg", photo_bytes("rocket.jpg"))
    fetch_tweets()
    picture = Picture.objects.get()
    page = client.get(f"/album/{album.hashtag}/").content.decode()
    urls = re.findall(rf'{re.escape(s3.endpoint_url)}/{s3.bucket}/renditions/[^"\s]+', page)
    assert urls, page
    url = urls[0].replace("&amp;", "&")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["3600"]
    assert query["X-Amz-Signature"][0]
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read()
        assert response.headers["Content-Type"] == "image/jpeg"
    key = urlsplit(url).path.removeprefix(f"/{s3.bucket}/")
    assert key in keys_of(picture)
    assert body[:2] == b"\xff\xd8"
    assert body == s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    # moto 5.2.5 checks neither the signature nor the expiry of a presigned URL, so refusing a
    # tampered or expired one is S3's part, not asserted here.

    api = client.get(f"/api/v1/albums/{album.hashtag}/pictures/").json()
    api_urls = re.findall(r"https?://[^\"'\s]+", str(api))
    media = [u for u in api_urls if "/renditions/" in u or "/originals/" in u]
    assert media and all(u.startswith(f"{s3.endpoint_url}/{s3.bucket}/") and "X-Amz-Signature=" in u for u in media)


def test_the_owners_zip_streams_originals_from_the_bucket_and_leaves_out_a_missing_one(
    s3, x_settings, fake_x, media_server, album, client, owner
):
    add_photo(fake_x, media_server, "a.jpg", photo_bytes("rocket.jpg"))
    add_photo(fake_x, media_server, "b.png", photo_bytes("astronaut.png", fmt="PNG"))
    fetch_tweets()
    kept, lost = Picture.objects.order_by("original_key")
    s3.client().delete_object(Bucket=s3.bucket, Key=lost.original_key)
    client.force_login(owner)
    response = client.get(f"/album/{album.hashtag}/download.zip")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = archive.namelist()
    assert len(names) == 2 and names[-1].endswith("manifest.csv")
    original = s3.client().get_object(Bucket=s3.bucket, Key=kept.original_key)["Body"].read()
    assert archive.read(names[0]) == original


def test_with_a_cdn_domain_urls_are_unsigned_https_on_the_cdn(settings, album, client):
    server = S3Server(port=9)  # URLs are built without calling S3
    use_s3(settings, server, EVERHASH_S3_CDN_DOMAIN="cdn.example.test")
    make_picture(album=album, renditions={"thumb": {"key": "renditions/ab/abc/thumb.jpg", "width": 200, "height": 150}})
    page = client.get(f"/album/{album.hashtag}/").content.decode()
    assert "https://cdn.example.test/renditions/ab/abc/thumb.jpg" in page
    assert "X-Amz-" not in page
    assert signed_url_window() == 0


# Boundary of a signed-URL window: 10:30:00 UTC is a multiple of 1800 s (half of 3600) since the epoch.
BEFORE_WINDOW_END = datetime(2026, 11, 22, 10, 29, 50, tzinfo=UTC)


def test_cached_pages_and_etags_never_outlive_the_signed_urls_they_embed(s3, settings, album, client):
    settings.EVERHASH_API_CACHE_SECONDS = 300
    make_picture(album=album, renditions={"thumb": {"key": "renditions/ab/abc/thumb.jpg", "width": 200, "height": 150}})
    page_url = f"/album/{album.hashtag}/"
    api_url = f"/api/v1/albums/{album.hashtag}/pictures/"
    with time_machine.travel(BEFORE_WINDOW_END, tick=False) as clock:
        first = client.get(page_url)
        etag = first["ETag"]
        assert "X-Amz-Signature=" in first.content.decode()
        api_first = client.get(api_url).content
        clock.shift(5)
        assert client.get(page_url, HTTP_IF_NONE_MATCH=etag).status_code == 304
        assert client.get(page_url).content == first.content  # from the page cache
        assert client.get(api_url).content == api_first  # from the API's page cache

        clock.shift(10)  # 10:30:05: a new window; the first URLs have 3585 s left, new ones 3600
        again = client.get(page_url, HTTP_IF_NONE_MATCH=etag)
        assert again.status_code == 200
        assert again["ETag"] != etag
        assert again.content != first.content  # signed again, not the cached copy
        assert client.get(api_url).content != api_first


# Deleting.


def test_hiding_keeps_objects_and_deleting_removes_them_shared_ones_with_the_last_album(
    s3, x_settings, fake_x, media_server, owner, album
):
    beach = make_album(owner=owner, hashtag="beach")
    media_server.add("/m/both", photo_bytes("retina.jpg"))
    fake_x.add_post(text="Lovely #sunset #beach", photos=[("3_both", media_server.url("/m/both"))])
    add_photo(fake_x, media_server, "own.jpg", photo_bytes("rocket.jpg"))
    add_photo(fake_x, media_server, "hidden.png", photo_bytes("astronaut.png", fmt="PNG"))
    fetch_tweets()
    shared = Picture.objects.get(album=beach)
    own = Picture.objects.filter(album=album).exclude(content_hash=shared.content_hash)
    hidden, mine = (own.get(original_key__endswith=".png"), own.get(original_key__endswith=".jpg"))
    assert s3.object_keys() == referenced()

    moderation.hide(pictures=Picture.objects.filter(pk=hidden.pk), by=None)
    assert keys_of(hidden) <= s3.object_keys()  # hidden is not deleted

    moderation.delete(pictures=Picture.objects.filter(pk=mine.pk), by=None)
    assert not keys_of(mine) & s3.object_keys()
    assert keys_of(hidden) | keys_of(shared) <= s3.object_keys()

    fetch_tweets()  # rebuilds the collages the deletion made stale
    delete_album(album=Album.objects.get(pk=album.pk))
    left = s3.object_keys()
    assert keys_of(shared) <= left  # still in #beach
    assert not keys_of(hidden) & left
    assert left == referenced()  # #sunset's collage went too, unless #beach's is the same image

    delete_album(album=beach)
    assert s3.object_keys() == set()


# Pruning.


def test_prune_media_removes_old_orphans_from_the_bucket_and_nothing_else(s3, x_settings, fake_x, media_server, album):
    add_photo(fake_x, media_server, "b.jpg", photo_bytes("rocket.jpg"))
    fetch_tweets()
    in_use = s3.object_keys()
    client = s3.client()
    old_orphan = "renditions/ff/" + "f" * 64 + "/thumb.jpg"
    client.put_object(Bucket=s3.bucket, Key=old_orphan, Body=b"x" * 100)
    client.put_object(Bucket=s3.bucket, Key="elsewhere/old.txt", Body=b"not ours")
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        young_orphan = "originals/ee/" + "e" * 64 + ".jpg"
        client.put_object(Bucket=s3.bucket, Key=young_orphan, Body=b"y" * 10)
        out = StringIO()
        call_command("prune_media", "--dry-run", stdout=out)
        assert "Would remove 1 unreferenced files" in out.getvalue() and "100 bytes" in out.getvalue()
        assert old_orphan in s3.object_keys()

        out = StringIO()
        call_command("prune_media", stdout=out)
        assert "Removed 1 unreferenced files" in out.getvalue()
        assert f"kept {len(in_use)} in use and 1 younger" in out.getvalue()
    assert s3.object_keys() == in_use | {young_orphan, "elsewhere/old.txt"}


# The storage goes down in the middle of a fetch.


def test_an_s3_outage_mid_fetch_fails_the_album_keeps_its_cursor_and_a_rerun_completes_it(
    s3, x_settings, fake_x, media_server, album
):
    for name in ("chelsea.png", "rocket.jpg", "retina.jpg"):
        add_photo(fake_x, media_server, name, photo_bytes(name))
    calls = Calls()
    # Each picture writes 4 renditions and its original; S3 goes away after the 7th object:
    # the first picture is complete, the second is half written.
    calls.after_put = lambda puts: s3.stop() if puts == 7 else None

    output = fetch_tweets()
    assert not s3.running
    assert "#sunset: failed, 1 added" in output and "The media storage failed" in output
    album.refresh_from_db()
    assert album.failures == 1
    assert album.next_fetch_at > timezone.now() + timedelta(minutes=20)  # backing off
    state = album_source(album)
    assert (state.newest_post_id, state.backfill_token) == ("", "")  # the cursor did not move
    run = FetchRun.objects.get()
    assert "The media storage failed" in run.error and run.rejected == 0 and run.pictures_added == 1
    assert run.status == FetchRun.Status.FAILED and run.claim is None
    assert album.collage_stale  # its build failed too; the next run does it

    s3.start()  # the same port; moto kept the bucket and the objects written before the outage
    stored = s3.object_keys()
    assert len(stored) == 7
    assert set().union(*(keys_of(p) for p in Picture.objects.all())) <= stored  # no row without its files

    output = fetch_tweets("--album", "sunset")  # what an operator runs once S3 is back
    assert "#sunset: ok, 2 added, 0 duplicates, 0 rejected" in output
    assert Picture.objects.count() == 3
    assert Picture.objects.values("content_hash").distinct().count() == 3
    assert s3.object_keys() == referenced()
    album.refresh_from_db()
    assert album.failures == 0 and album_source(album).newest_post_id and not album.collage_stale


def test_a_subprocess_configured_by_the_helpers_environment_writes_to_the_bucket(s3):
    """What the benchmarks and the Celery workers rely on: S3Server.env alone selects S3."""
    code = "from pictures.storage import store_file; store_file('collages/' + 'ab' * 32 + '.jpg', b'\\xff\\xd8 x')"
    manage({**os.environ, "DJANGO_SETTINGS_MODULE": "everhash.settings", **s3.env}, "shell", "-c", code, timeout=60)
    head = s3.client().head_object(Bucket=s3.bucket, Key="collages/" + "ab" * 32 + ".jpg")
    assert (head["ContentType"], head["CacheControl"]) == ("image/jpeg", CACHE_CONTROL)
