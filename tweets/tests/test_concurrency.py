"""Two fetch_tweets processes at once, against one real database: no duplicates, no errors.

The processes use their own database (a SQLite file, or the MariaDB database the
suite runs against), migrated by a subprocess, as cron would run them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from everhash.testing.builders import COLOUR_PHOTOS, photo_bytes
from everhash.testing.processes import ROOT, manage, run_python

SETUP = """
import django; django.setup()
from django.core.management import call_command
call_command("flush", interactive=False, verbosity=0)
from users.models import User
from albums.models import Album
owner = User.objects.create_user("owner@example.com", "pw")
Album.objects.create(owner=owner, hashtag="sunset")
Album.objects.create(owner=owner, hashtag="beach")
"""

REPORT = """
import django; django.setup()
from pictures.models import Picture
from albums.models import Milestone
from django.db.models import Count
print(Picture.objects.count(), Picture.objects.values("album", "content_hash").distinct().count(),
      Milestone.objects.count(), Milestone.objects.filter(notified_at__isnull=False).count())
"""


@pytest.fixture
def environment(process_env):
    env = {**process_env, "EVERHASH_MILESTONES": "5"}
    manage(env, "migrate", "-v0")
    run_python(env, SETUP, timeout=60)
    return env


def test_two_overlapping_runs_store_each_photo_once_and_send_each_milestone_once(environment, fake_x):
    for tag in ("sunset", "beach"):
        for i, name in enumerate(COLOUR_PHOTOS):
            url = fake_x.add_image(f"{tag}-{i}.jpg", photo_bytes(name))
            fake_x.add_post(tag=tag, photos=[(f"3_{tag}{i}", url)])
            mirrored = fake_x.add_image(f"{tag}-{i}-m.jpg", photo_bytes(name, mirror=True))
            fake_x.add_post(tag=tag, photos=[(f"3_{tag}{i}m", mirrored)])
    command = [sys.executable, "manage.py", "fetch_tweets", "--no-lock"]
    runs = [
        subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all("Traceback" not in err for _, err in outputs), outputs

    pictures, distinct, milestones, notified = map(int, run_python(environment, REPORT, timeout=60).split())
    assert pictures == distinct == 24
    assert (milestones, notified) == (2, 2)
    mails = list(Path(environment["EMAIL_FILE_PATH"]).glob("*.log"))
    assert sum(path.read_text().count("Subject: ") for path in mails) == 2

    # A third run afterwards finds nothing new.
    again = subprocess.run(
        [*command, "--album", "sunset"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert "0 added" in again.stdout
