"""A key holds its whole content or does not exist, whatever happens mid-write (issue 19, item 1).

Real faults: a process killed by the kernel inside a write (strace's fault injection), a full
disk (a small tmpfs filled to ENOSPC), files damaged or lost after the fact (prune_media --verify,
on the local folder and on S3 through moto).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from albums.models import Album
from everhash.lib.images import make_renditions, open_verified
from everhash.testing.builders import SAMPLE_PHOTOS, make_album, photo_bytes
from everhash.testing.fixtures import fetch_tweets, require
from everhash.testing.processes import ROOT
from pictures.models import Picture
from pictures.services import original_key, rendition_key
from pictures.storage import TEMPORARY_SUFFIX, store_file

STRACE = shutil.which("strace") or "/usr/bin/strace"

# Stores one photo's files (renditions, then the original) the way a fetch does, and nothing
# else: its only write() calls are the files' (no bytecode, no output), so strace's counter
# picks which file's write the kernel kills the process in.
STORE_PHOTO = """
import hashlib, sys
import django
django.setup()
from django.conf import settings
from everhash.lib.images import open_verified
from pictures.services import store_photo_files
data = open(sys.argv[1], "rb").read()
verified = open_verified(data, max_pixels=settings.EVERHASH_MAX_IMAGE_PIXELS)
store_photo_files(data=data, verified=verified, content_hash=hashlib.sha256(data).hexdigest())
"""


def expected_files(data: bytes) -> dict[str, bytes]:
    """Every key a fetch of these bytes writes, with the bytes it must hold."""
    content_hash = hashlib.sha256(data).hexdigest()
    verified = open_verified(data, max_pixels=settings.EVERHASH_MAX_IMAGE_PIXELS)
    files = {rendition_key(content_hash, name): jpeg for name, (jpeg, _, _) in make_renditions(verified).items()}
    files[original_key(content_hash, verified.format)] = data
    return files


def files_on_disk(root: Path) -> dict[str, bytes]:
    """Every file under the media folder by key, temporaries aside."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not path.name.endswith(TEMPORARY_SUFFIX)
    }


def assert_each_key_complete_or_absent(root: Path, expected: dict[str, bytes]) -> None:
    for key, data in files_on_disk(root).items():
        if key in expected:
            assert len(data) == len(expected[key]) and data == expected[key], f"{key} is incomplete"


def assert_picture_files_complete(picture: Picture, expected: dict[str, bytes]) -> None:
    keys = [picture.original_key, *(r["key"] for r in picture.renditions.values())]
    assert sorted(keys) == sorted(expected)
    for key in keys:
        with default_storage.open(key, "rb") as file:
            assert file.read() == expected[key], f"{key} is incomplete"


@pytest.fixture
def retina() -> bytes:
    return photo_bytes("retina.jpg")  # 229 kB: several 64 kB chunks for a chunked writer


@pytest.mark.parametrize("nth_write", [1, 3, 5], ids=["thumb", "medium", "original"])
def test_a_process_killed_inside_a_write_leaves_no_partial_file_and_the_rerun_stores_it_whole(
    nth_write, tmp_path, retina, x_settings, fake_x, media_server, album
):
    require(STRACE, "strace", "the tests that kill a process inside a write")
    photo = tmp_path / "retina.jpg"
    photo.write_bytes(retina)
    media = Path(settings.MEDIA_ROOT)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "everhash.settings",
        "EVERHASH_VAR_DIR": str(tmp_path),
        "MEDIA_ROOT": str(media),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    killed = subprocess.run(
        [STRACE, "-qq", "-o", "/dev/null", "-e", "trace=write", "-e", f"inject=write:signal=KILL:when={nth_write}"]
        + [sys.executable, "-c", STORE_PHOTO, str(photo)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9 or killed.returncode == 137, killed  # the kernel killed it mid-write
    expected = expected_files(retina)
    assert_each_key_complete_or_absent(media, expected)

    media_server.add("/media/retina.jpg", retina)
    fake_x.add_post(photos=[("3_retina", media_server.url("/media/retina.jpg"), 800, 600)])
    assert "1 added" in fetch_tweets()
    assert_picture_files_complete(Picture.objects.get(), expected)


@pytest.fixture
def small_disk(settings, tmp_path):
    """MEDIA_ROOT on a 1 MiB tmpfs of its own (mounting needs root, as in CI)."""
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    settings.MEDIA_ROOT = mountpoint
    settings.STORAGES = {**settings.STORAGES}  # default_storage is rebuilt on the new folder
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def fill(disk: Path, *, leave: int) -> Path:
    """A file taking all the disk's free space but `leave` bytes."""
    stats = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - leave))
    return filler


def test_a_full_disk_mid_write_fails_the_album_without_a_partial_file_and_the_rerun_stores_it_whole(
    small_disk, retina, x_settings, fake_x, media_server, album
):
    media_server.add("/media/retina.jpg", retina)
    fake_x.add_post(photos=[("3_retina", media_server.url("/media/retina.jpg"), 800, 600)])
    filler = fill(small_disk, leave=200 * 1024)  # the thumb, square and medium fit; the large does not

    output = fetch_tweets()
    assert "#sunset: failed" in output and "No space left on device" in output
    assert not Picture.objects.exists()
    expected = expected_files(retina)
    on_disk = files_on_disk(small_disk)
    assert any(key in expected for key in on_disk)  # some renditions were written before the disk filled
    assert_each_key_complete_or_absent(small_disk, expected)
    assert not [p for p in small_disk.rglob("*") if p.name.endswith(TEMPORARY_SUFFIX)]

    filler.unlink()  # the operator frees space
    Album.objects.update(next_fetch_at=None)
    assert "1 added" in fetch_tweets()
    assert_picture_files_complete(Picture.objects.get(), expected)


def test_an_existing_key_that_is_incomplete_is_written_again_not_trusted(retina):
    expected = expected_files(retina)
    original = next(key for key in expected if key.startswith("originals/"))
    large = next(key for key in expected if key.endswith("/large.jpg"))
    # As an older version (writing in place) left them: short, and the right size but damaged.
    for key, data in ((original, expected[original][:65536]), (large, b"\0" * len(expected[large]))):
        path = Path(default_storage.path(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    store_file(original, expected[original])
    assert Path(default_storage.path(original)).read_bytes() == expected[original]
    # A rendition is trusted on its size (prune_media --verify decodes it); `replace` rewrites it.
    store_file(large, expected[large], replace=True)
    assert Path(default_storage.path(large)).read_bytes() == expected[large]


# prune_media --verify.


def verify(*args: str) -> str:
    out = StringIO()
    call_command("prune_media", "--verify", *args, stdout=out)
    return out.getvalue()


def damage(*, lose: str, truncate: str) -> None:
    default_storage.delete(lose)
    data = default_storage.open(truncate, "rb").read()
    default_storage.delete(truncate)
    default_storage.save(truncate, ContentFile(data[:1000]))


@pytest.fixture
def two_pictures(x_settings, fake_x, media_server, owner):
    make_album(owner=owner, hashtag="sunset")
    photos = {name: photo_bytes(name) for name in ("retina.jpg", "rocket.jpg")}
    for name, data in photos.items():
        media_server.add(f"/media/{name}", data)
        fake_x.add_post(photos=[(f"3_{name[:4]}", media_server.url(f"/media/{name}"), 800, 600)])
    assert "2 added" in fetch_tweets()
    by_hash = {hashlib.sha256(data).hexdigest(): data for data in photos.values()}
    return {picture: by_hash[picture.content_hash] for picture in Picture.objects.order_by("pk")}


def test_verify_rebuilds_renditions_in_srgb_and_records_the_colour_profile(x_settings, fake_x, media_server, owner):
    make_album(owner=owner, hashtag="sunset")
    media_server.add("/media/camera.jpg", (SAMPLE_PHOTOS / "rocket.jpg").read_bytes())  # Adobe RGB
    fake_x.add_post(photos=[("3_cam", media_server.url("/media/camera.jpg"), 640, 427)])
    assert "1 added" in fetch_tweets()
    picture = Picture.objects.get()
    assert picture.colour_profile == "Adobe RGB (1998)"
    large = picture.renditions["large"]["key"]
    in_srgb = default_storage.open(large, "rb").read()
    Picture.objects.update(colour_profile="")  # as stored before the rows recorded it
    default_storage.delete(large)

    assert "1 with damaged renditions rebuilt" in verify()

    assert Picture.objects.get().colour_profile == "Adobe RGB (1998)"
    assert default_storage.open(large, "rb").read() == in_srgb


def run_verify_and_refetch(two_pictures) -> None:
    (damaged, damaged_bytes), (lost, lost_bytes) = two_pictures.items()
    damage(lose=lost.original_key, truncate=damaged.renditions["large"]["key"])

    dry = verify("--dry-run", "-v2")
    assert "1 with damaged renditions would be rebuilt, 1 with a lost original removed" in dry
    assert Picture.objects.count() == 2

    assert "1 with damaged renditions rebuilt, 1 with a lost original removed" in verify()
    assert_picture_files_complete(damaged, expected_files(damaged_bytes))
    assert list(Picture.objects.all()) == [damaged]
    assert "0 with damaged renditions rebuilt, 0 with a lost original removed" in verify()

    Album.objects.update(next_fetch_at=None)
    assert "1 added" in fetch_tweets()  # the album walked its history again and found the lost one
    refetched = Picture.objects.get(media_key=lost.media_key)
    assert_picture_files_complete(refetched, expected_files(lost_bytes))


def test_prune_media_verify_rebuilds_damaged_renditions_and_fetches_a_lost_original_again(two_pictures):
    run_verify_and_refetch(two_pictures)


def test_prune_media_verify_repairs_the_same_damage_on_s3(s3, two_pictures):
    run_verify_and_refetch(two_pictures)


def test_a_temporary_left_by_a_killed_writer_is_pruned_after_the_grace_period(db):
    folder = Path(settings.MEDIA_ROOT) / "originals" / "ab"
    folder.mkdir(parents=True)
    left = folder / f".{'ab' * 32}.jpg.0123456789abcdef{TEMPORARY_SUFFIX}"
    left.write_bytes(b"\xff\xd8 half a photo")
    young = folder / f".{'cd' * 32}.jpg.0123456789abcdef{TEMPORARY_SUFFIX}"
    young.write_bytes(b"\xff\xd8 being written now")
    old = time.time() - 30 * 3600
    os.utime(left, (old, old))
    out = StringIO()
    call_command("prune_media", stdout=out)
    assert "Removed 1 unreferenced files" in out.getvalue()
    assert not left.exists() and young.exists()
