"""prune_media on the local media folder: old orphans go, young ones and referenced ones stay."""

from __future__ import annotations

import os
import time
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from collages.models import Collage
from everhash.testing.builders import make_picture
from pictures.storage import modified_time, store_file

HOUR = 3600


def put(key: str, size: int = 10, *, age_hours: float = 0) -> str:
    default_storage.save(key, ContentFile(b"x" * size))
    if age_hours:
        then = time.time() - age_hours * HOUR
        os.utime(default_storage.path(key), (then, then))
    return key


def stored() -> set[str]:
    root = default_storage.location
    return {os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/") for d, _, fs in os.walk(root) for f in fs}


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_media", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def media(album):
    """A picture and a collage (both sizes), all old, plus orphans of every kind and age."""
    h = "a" * 64
    picture = make_picture(
        album=album,
        content_hash=h,
        original_key=put(f"originals/aa/{h}.jpg", age_hours=100),
        renditions={
            name: {"key": put(f"renditions/aa/{h}/{name}.jpg", age_hours=100), "width": 1, "height": 1}
            for name in ("thumb", "square", "medium", "large")
        },
    )
    collage = Collage.objects.create(
        album=album,
        image_key=put("collages/" + "c" * 64 + ".jpg", age_hours=100),
        square_key=put("collages/" + "c" * 64 + "-square.jpg", age_hours=100),
        small_key=put("collages/" + "c" * 64 + "-square-400.jpg", age_hours=100),
        fingerprint="f",
    )
    orphans = {
        put("originals/bb/" + "b" * 64 + ".png", size=1000, age_hours=30),
        put("renditions/bb/" + "b" * 64 + "/thumb.jpg", size=200, age_hours=30),
        put("collages/" + "d" * 64 + "-square.jpg", size=300, age_hours=30),
    }
    young = put("renditions/ee/" + "e" * 64 + "/thumb.jpg", age_hours=1)
    outside = put("exports/old.zip", age_hours=1000)
    return {"picture": picture, "collage": collage, "orphans": orphans, "young": young, "outside": outside}


def test_it_removes_old_unreferenced_files_and_keeps_young_referenced_and_foreign_ones(media):
    before = stored()
    output = prune()
    assert "Removed 3 unreferenced files (0.0 MB, 1500 bytes)" in output
    assert "kept 8 in use and 1 younger than 24 hours; 12 scanned" in output
    assert stored() == before - media["orphans"]
    assert media["young"] in stored() and media["outside"] in stored()


def test_a_dry_run_removes_nothing_and_lists_what_it_would_remove(media):
    before = stored()
    output = prune("--dry-run", "-v2")
    assert "Would remove 3 unreferenced files" in output
    assert all(f"would remove {key}" in output for key in media["orphans"])
    assert stored() == before


def test_the_grace_period_is_configurable_but_never_shorter_than_two_hours(media):
    assert "Removed 0 unreferenced files" in prune("--grace-hours", "48")  # the orphans are 30 hours old
    assert media["orphans"] <= stored()
    assert "Removed 3 " in prune("--grace-hours", "29.5")
    with pytest.raises(CommandError, match="at least 2"):
        prune("--grace-hours", "1")


def test_referenced_files_are_never_removed_even_when_very_old(media, album):
    assert "Removed 3 " in prune("--grace-hours", "2")
    picture, collage = media["picture"], media["collage"]
    for key in [picture.original_key, *(r["key"] for r in picture.renditions.values())]:
        assert key in stored()
    assert {collage.image_key, collage.square_key, collage.small_key} <= stored()
    assert media["young"] in stored()  # 1 hour old


def test_storing_an_old_file_again_refreshes_it_so_a_prune_keeps_it(media):
    orphan = "originals/bb/" + "b" * 64 + ".png"
    store_file(orphan, b"x" * 1000)  # a fetch found these bytes already stored, its row follows
    assert modified_time(orphan).timestamp() > time.time() - 60
    assert "Removed 2 " in prune()
    assert orphan in stored()
