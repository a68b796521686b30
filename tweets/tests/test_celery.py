"""Celery, the optional scale-out path: a real redis-server and two real worker processes.

Like test_concurrency.py, every process (workers, beat, fetch_tweets) uses its own database, a
SQLite file or the MariaDB database named by the inherited DB_* variables, migrated by a subprocess.
The workers' logs say which worker fetched what: one `fetch album_id=...` line per task.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from everhash.testing import processes
from everhash.testing.builders import COLOUR_PHOTOS, make_album, photo_bytes
from everhash.testing.processes import ROOT, manage, run_python, stop, wait_for
from tweets.services import finish_round

SETUP = """
import json, sys
import django; django.setup()
from django.core.management import call_command
call_command("flush", interactive=False, verbosity=0)
from users.models import User
from albums.models import Album
owner = User.objects.create_user("owner@example.com", "pw")
print(json.dumps({tag: Album.objects.create(owner=owner, hashtag=tag).pk for tag in sys.argv[1:]}))
"""

REPORT = """
import json
import django; django.setup()
from django.db.models import Count
from albums.models import Album, Milestone
from collages.models import Collage
from pictures.models import Picture
from tweets.models import FetchRun
runs = FetchRun.objects.values_list("album__hashtag").annotate(n=Count("id"))
print(json.dumps({
    "pictures": Picture.objects.count(),
    "distinct": Picture.objects.values("album", "content_hash").distinct().count(),
    "per_album": {album.hashtag: album.pictures.count() for album in Album.objects.all()},
    "runs": dict(runs),
    "milestones": Milestone.objects.count(),
    "notified": Milestone.objects.filter(notified_at__isnull=False).count(),
    "attempts": sorted(set(Milestone.objects.values_list("attempts", flat=True))),
    "collages": Collage.objects.count(),
    "stale": Album.objects.filter(collage_stale=True).count(),
}))
"""

FETCH_LINE = re.compile(
    r"fetch album_id=(?P<id>\d+) (?:album=#(?P<tag>\w+) )?status=(?P<status>\w+).* worker=(?P<worker>\S+)"
)

# `celery -A everhash beat`, with the configured entry due every second instead of every 20 minutes.
BEAT = """
import sys
from everhash.celery import app
app.conf.beat_schedule = {name: {**entry, "schedule": 1.0} for name, entry in app.conf.beat_schedule.items()}
app.Beat(loglevel="INFO", schedule=sys.argv[1]).run()
"""


def report(env: dict) -> dict:
    return json.loads(run_python(env, REPORT))


def emails_sent(env: dict) -> int:
    return sum(path.read_text().count("\nSubject: ") for path in Path(env["EMAIL_FILE_PATH"]).glob("*.log"))


class Service(processes.Service):
    """A worker, beat or fetch_tweets process; its log says which worker fetched what."""

    def fetches(self) -> list[dict]:
        return [match.groupdict() for match in FETCH_LINE.finditer(self.text())]


@pytest.fixture
def environment(process_env, redis_url):
    """What cron, workers and beat all get, as in test_concurrency.py, plus the broker."""
    env = {
        **process_env,
        "LOG_LEVEL": "INFO",
        "CELERY_BROKER_URL": redis_url,
    }
    manage(env, "migrate", "-v0")
    return env


def albums(env: dict, fake_x, *, tags: list[str], photos: int, milestones: str = "1000") -> dict[str, int]:
    """Fresh albums with `photos` posted photos each; the workers must be started after (they read the env)."""
    env["EVERHASH_MILESTONES"] = milestones
    for tag in tags:
        for i in range(photos):
            url = fake_x.add_image(f"{tag}-{i}.jpg", photo_bytes(COLOUR_PHOTOS[i]))
            fake_x.add_post(tag=tag, photos=[(f"3_{tag}{i}", url)])
    return json.loads(run_python(env, SETUP, *tags))


@pytest.fixture
def start_workers(environment, tmp_path):
    """start_workers() starts w1 and w2 (prefork, one process each) and waits until both are ready."""
    started: list[Service] = []

    def start() -> list[Service]:
        for name in ("w1", "w2"):
            command = [sys.executable, "-m", "celery", "-A", "everhash", "worker", "--pool", "prefork"]
            command += ["--concurrency", "1", "-n", f"{name}@%h", "--loglevel", "INFO"]
            command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
            started.append(Service(name, command, env=environment, log=tmp_path / f"{name}.log"))
        for worker in started:
            worker.wait_for_line(" ready.")
        return started

    yield start
    stop(*(worker.process for worker in started))


@pytest.fixture
def broker(redis_url):
    """Sends tasks by name over the broker, as beat and `task.delay()` do (JSON, the default queue)."""
    from celery import Celery

    app = Celery("everhash-tests", broker=redis_url, set_as_current=False)
    yield lambda name, *args: app.send_task(name, args=args)
    app.close()


def fetched(workers: list[Service], status: str | None = None) -> list[dict]:
    lines = [line for worker in workers for line in worker.fetches()]
    return [line for line in lines if status is None or line["status"] == status]


def logs(workers: list[Service]) -> str:
    return "\n".join(f"--- {worker.name}:\n{worker.text()}" for worker in workers)


def test_dispatch_fans_the_due_albums_out_over_both_workers(environment, fake_x, start_workers, broker):
    tags = ["alpha", "bravo", "charlie", "delta"]
    albums(environment, fake_x, tags=tags, photos=3)
    workers = start_workers()

    broker("tweets.tasks.dispatch_due_albums")
    wait_for(lambda: len(fetched(workers)) >= 4, timeout=60, what=lambda: logs(workers))

    done = fetched(workers, "ok")
    assert sorted(line["tag"] for line in done) == tags, logs(workers)
    # Both workers fetched, and each log holds only its own worker's lines.
    assert {line["worker"].split("@")[0] for line in done} == {"w1", "w2"}, logs(workers)
    for worker in workers:
        assert {line["worker"].split("@")[0] for line in worker.fetches()} == {worker.name}
    state = report(environment)
    assert state["pictures"] == state["distinct"] == 12
    assert state["per_album"] == dict.fromkeys(tags, 3)
    assert state["runs"] == dict.fromkeys(tags, 1)
    # Each task built its own album's cover.
    assert (state["collages"], state["stale"]) == (4, 0)


def test_cron_and_celery_at_once_store_each_photo_once_and_send_each_milestone_once(
    environment, fake_x, start_workers, broker
):
    tags = ["alpha", "bravo", "charlie", "delta", "echo"]
    albums(environment, fake_x, tags=tags, photos=4, milestones="2,4")
    workers = start_workers()

    cron = subprocess.Popen(
        [sys.executable, "manage.py", "fetch_tweets", "--no-lock"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Once cron has listed the due albums and is fetching the first one, beat's task arrives.
        wait_for(lambda: fake_x.search_requests(), timeout=60, what=lambda: "the cron run's first search")
        broker("tweets.tasks.dispatch_due_albums")
        out, err = cron.communicate(timeout=120)
    finally:
        stop(cron)
    assert cron.returncode == 0, (out, err)
    assert "Traceback" not in err, err
    wait_for(lambda: "dispatch albums=" in logs(workers), timeout=30, what=lambda: logs(workers))
    dispatched = int(re.search(r"dispatch albums=(\d+)", logs(workers))[1])
    wait_for(lambda: len(fetched(workers)) >= dispatched, timeout=60, what=lambda: logs(workers))

    by_cron = re.findall(r"^#(\w+): ok,", out, flags=re.MULTILINE)
    by_celery = [line["tag"] for line in fetched(workers, "ok")]
    # They really overlapped: each fetched some albums, and no album twice.
    assert by_cron and by_celery, (out, logs(workers))
    assert sorted(by_cron + by_celery) == tags, (out, logs(workers))
    assert "Traceback" not in logs(workers), logs(workers)

    state = report(environment)
    assert state["pictures"] == state["distinct"] == 20
    assert state["runs"] == dict.fromkeys(tags, 1)
    # Two milestones per album, each announced once, by exactly one email.
    assert (state["milestones"], state["notified"], state["attempts"]) == (10, 10, [1])
    assert emails_sent(environment) == 10


def test_a_duplicate_fetch_task_does_nothing(environment, fake_x, start_workers, broker):
    ids = albums(environment, fake_x, tags=["alpha", "bravo"], photos=2)
    # Cron gets to alpha first; then a task for alpha arrives.
    manage(environment, "fetch_tweets", "--album", "alpha", timeout=120)
    workers = start_workers()
    broker("tweets.tasks.fetch_album_task", ids["bravo"])
    wait_for(lambda: fetched(workers), timeout=60, what=lambda: logs(workers))
    assert [line["status"] for line in fetched(workers)] == ["ok"], logs(workers)
    searches = len(fake_x.search_requests())

    # Two more tasks for bravo (queued twice, or a second dispatch) and one for alpha.
    for album_id in (ids["bravo"], ids["bravo"], ids["alpha"]):
        broker("tweets.tasks.fetch_album_task", album_id)
    wait_for(lambda: len(fetched(workers)) >= 4, timeout=60, what=lambda: logs(workers))

    assert Counter(line["status"] for line in fetched(workers)) == {"ok": 1, "not_due": 3}, logs(workers)
    assert len(fake_x.search_requests()) == searches  # not even a request to X
    state = report(environment)
    assert state["per_album"] == {"alpha": 2, "bravo": 2}
    assert state["runs"] == {"alpha": 1, "bravo": 1}


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a prefork worker's pool processes)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_fetch_whose_worker_process_dies_runs_again_and_finds_the_album_still_claimed(
    environment, fake_x, start_workers, broker
):
    ids = albums(environment, fake_x, tags=["alpha"], photos=2)
    workers = start_workers()
    fake_x.fail_next("timeout", delay=3)  # X answers slowly: the fetch is under way when its process dies
    broker("tweets.tasks.fetch_album_task", ids["alpha"])
    wait_for(lambda: fake_x.search_requests(), timeout=30, what=lambda: logs(workers))
    [running] = [worker for worker in workers if "fetch_album_task[" in worker.text()]
    for pid in children(running.process.pid):
        os.kill(pid, signal.SIGKILL)

    # The message was not acknowledged: it is delivered again, and the album is still claimed.
    wait_for(lambda: fetched(workers), timeout=30, what=lambda: logs(workers))
    assert "WorkerLostError" in running.text()
    assert [line["status"] for line in fetched(workers)] == ["not_due"], logs(workers)
    assert len(fake_x.search_requests()) == 1
    state = report(environment)
    assert (state["runs"], state["pictures"]) == ({"alpha": 1}, 0)


def test_the_dispatch_leaves_the_collages_of_the_albums_it_enqueued_to_their_own_tasks(owner):
    moderated = make_album(owner=owner, hashtag="alpha", collage_stale=True)
    enqueued = make_album(owner=owner, hashtag="bravo", collage_stale=True)
    summary = finish_round(collages_built_elsewhere=[enqueued.pk])
    assert [result.album.pk for result in summary.results] == [moderated.pk]
    enqueued.refresh_from_db()
    assert enqueued.collage_stale


@pytest.mark.parametrize("program", ["worker", "beat"])
def test_without_a_broker_worker_and_beat_refuse_to_start(tmp_path, program):
    env = {**os.environ, "CELERY_BROKER_URL": "", "EVERHASH_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "everhash", program],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "CELERY_BROKER_URL is not set" in result.stderr


def test_the_beat_schedule_is_the_cron_line():
    from celery.schedules import crontab

    from everhash.celery import app
    from tweets.services import CLAIM_LEASE

    line = re.search(r"^ +(\S+ \S+ \S+ \S+ \S+) .*manage\.py fetch_tweets$", (ROOT / "README.rst").read_text(), re.M)
    minute, hour, day_of_month, month_of_year, day_of_week = line[1].split()
    cron = crontab(minute, hour, day_of_week, day_of_month, month_of_year)
    entry = app.conf.beat_schedule["dispatch-due-albums"]
    assert entry == {"task": "tweets.tasks.dispatch_due_albums", "schedule": cron}
    assert entry["schedule"].minute == {0, 20, 40}
    assert app.conf.timezone == "UTC"
    # A fetch ends before its claim does, and Redis never hands a running fetch to a second worker.
    assert app.conf.task_time_limit < CLAIM_LEASE.total_seconds()
    assert app.conf.task_soft_time_limit is None
    assert app.conf.broker_transport_options["visibility_timeout"] > app.conf.task_time_limit
    assert app.conf.accept_content == ["json"]
    assert app.conf.beat_schedule == settings.CELERY_BEAT_SCHEDULE


def test_beat_enqueues_the_dispatch_and_later_dispatches_find_nothing_due(environment, fake_x, start_workers, tmp_path):
    albums(environment, fake_x, tags=["alpha", "bravo"], photos=2)
    workers = start_workers()
    command = [sys.executable, "-c", BEAT, str(tmp_path / "beat-schedule")]
    beat = Service("beat", command, env=environment, log=tmp_path / "beat.log")
    try:
        # Both fetches first: a dispatch while one is still running also finds nothing due (it is claimed).
        wait_for(lambda: len(fetched(workers, "ok")) >= 2, timeout=30, what=lambda: logs([*workers, beat]))
        before = logs(workers).count("dispatch albums=0")
        wait_for(
            lambda: logs(workers).count("dispatch albums=0") > before, timeout=30, what=lambda: logs([*workers, beat])
        )
    finally:
        stop(beat.process)

    assert "Sending due task dispatch-due-albums (tweets.tasks.dispatch_due_albums)" in beat.text()
    assert sorted(line["tag"] for line in fetched(workers, "ok")) == ["alpha", "bravo"], logs(workers)
    assert report(environment)["per_album"] == {"alpha": 2, "bravo": 2}
