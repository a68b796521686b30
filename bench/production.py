"""The production stack end to end: S3 (moto), MariaDB and two Celery workers, against the embedded defaults.

    .venv/bin/python -m bench.production          # markdown report on stdout (docs/benchmarks.md), ~9 min
    .ci/with-mariadb .venv/bin/python -m bench.production    # the same (without DB_HOST, the first re-runs
                                                             # itself under .ci/with-mariadb)
    .venv/bin/python -m bench.production --rounds 3 --configs baseline,celery-2
    .venv/bin/python -m bench.production --profile --keep    # plus cProfile runs; keep the logs

The pictures and the fake X API are those of bench/ingest.py (its functions, imported): the same 300
generated photos of 0.3 to 12 megapixels, served over HTTPS by FakeXAPI with a throwaway CA. They are
posted under 4 hashtags (`--albums`), picture i under the (i mod 4)-th, so that there are 4 albums of
75 photos in every configuration: one album is fetched by one runner at a time (it is claimed), so
this is what gives two workers parallel work, and the single process gets the same 4 albums.

The configurations, each on a fresh database and a fresh folder or bucket per round:

- `baseline`, the embedded defaults: a SQLite file, a local media folder, one `manage.py fetch_tweets`
  process (as cron runs it: every due album, default page budget), DEBUG off.
- `cron-prod`: the same single `fetch_tweets` process on MariaDB and S3: what the storage and
  database change costs, apart from Celery.
- `celery-1` and `celery-2`: MariaDB, S3, a private redis-server, and one or two
  `celery -A everhash worker --pool prefork --concurrency 1` processes started (and ready) beforehand;
  the work starts when the benchmark sends `tweets.tasks.dispatch_due_albums` over the broker, as
  beat does, and the benchmark polls the database until every picture is stored.

Times: from the start (the command launched; the dispatch sent) to the last picture's row
(`max(added_at)`, written by the ingesting process itself), which gives pictures/s; and to "all done"
(every FetchRun finished and every album's collage built: the command's exit for fetch_tweets).
A round counts only when it stored exactly the expected pictures, all distinct, with no duplicate
and no rejection, one FetchRun per album and every original in the storage.

Where the CPU goes: per round, the user + system time of the ingesting processes (fetch_tweets, or
each worker's whole process group), moto, mariadbd, redis-server and the benchmark process itself
(the fake X API's TLS server, polling), from /proc and getrusage.

S3 is moto's ThreadedMotoServer (pictures/tests/s3_server.py) in a process of its own, restarted for
each round (a fresh bucket, and memory given back). MariaDB is the throwaway server of
`.ci/with-mariadb` (on a socket; `innodb_flush_log_at_trx_commit=2`): each round loads a dump of a
migrated template into a new database. Everything listens on 127.0.0.1 or a socket.

Capacity figure, in the same run (`--idle-albums`, 50 by default): `fetch_tweets` over that many
albums whose search finds nothing new (each has a `since_id` and a complete history: one search
request, the claim, a FetchRun, the album's update), on SQLite and on MariaDB, alternately, per
round: the command's wall time and the FetchRuns' span (first start to last finish) per album.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.ingest import (
    HASHTAG,
    RUN_TIMEOUT,
    copy_database,
    database_environment,
    describe,
    fake_x_api,
    load_pictures,
    pipeline_environment,
    profile_summary,
    run_measured,
)
from everhash.testing.processes import REDIS_SERVER, ROOT, Service, manage, redis_server, run_python
from everhash.testing.s3_server import S3Server, s3_server_process

IDLE_TAG = "everhashidle"
# Any X-sized id: the idle albums' since_id (the fake has no post under their hashtags anyway).
SINCE_ID = "1900000000000000000"
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
POLL_SECONDS = 0.1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    database: str  # sqlite | mariadb
    storage: str  # local | s3
    workers: int  # 0: one fetch_tweets process


CONFIGS = {
    c.name: c
    for c in (
        Config("baseline", "embedded defaults: SQLite, local folder, one fetch_tweets", "sqlite", "local", 0),
        Config("cron-prod", "one fetch_tweets on MariaDB + S3 (moto)", "mariadb", "s3", 0),
        Config("celery-1", "Celery, 1 worker (concurrency 1), MariaDB + S3 (moto)", "mariadb", "s3", 1),
        Config("celery-2", "Celery, 2 workers (concurrency 1 each), MariaDB + S3 (moto)", "mariadb", "s3", 2),
    )
}

SETUP = """
import sys
import django; django.setup()
from albums.models import Album
from tweets.models import AlbumSource
from users.models import User
idle, tags = sys.argv[1] == "idle", sys.argv[3:]
owner = User.objects.create_user("bench@example.com", None, name="Bench Owner")
for tag in tags:
    if idle:  # fetched before, history complete: a fetch is one since_id search
        album = Album.objects.create(owner=owner, hashtag=tag, title="Idle")
        AlbumSource.objects.create(album=album, key="x", newest_post_id=sys.argv[2], backfill_done=True)
    else:
        Album.objects.create(owner=owner, hashtag=tag, title="Benchmark")
"""


# --- Processes ---------------------------------------------------------------------------------


def cpu_of(pids: list[int]) -> float:
    """User + system seconds of these processes (and of their children they reaped)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


def session_pids(sid: int) -> list[int]:
    """Every process of a session (a worker started with start_new_session, and its pool children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rpartition(")")[2].split()[3]) == sid:
                found.append(int(stat.parent.name))
    return found


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def service_cpu(service: Service) -> float:
    """CPU seconds used so far by a Service and every process of its session."""
    return cpu_of(session_pids(service.pid))


@contextlib.contextmanager
def moto_server(folder: Path) -> Iterator[tuple[dict[str, str], int]]:
    """moto's S3 in a process of its own: yields (EVERHASH_S3_* variables, its pid)."""
    with s3_server_process(folder, bucket="everhash-bench") as (s3_env, pid):
        # The production defaults (S3Server sets 1 attempt and 2 s for tests of outages).
        s3_env.pop("EVERHASH_S3_MAX_ATTEMPTS")
        s3_env.pop("EVERHASH_S3_CONNECT_TIMEOUT")
        yield s3_env, pid


def s3_originals(s3_env: dict[str, str]) -> int:
    port = int(s3_env["EVERHASH_S3_ENDPOINT_URL"].rpartition(":")[2])
    return len(S3Server(bucket=s3_env["EVERHASH_S3_BUCKET"], port=port).object_keys("originals/"))


# (stage, file suffix, function), read from the profile of `--profile`, as in bench/ingest.py.
STAGES = [
    ("the whole command", "django/core/management/__init__.py", "execute_from_command_line"),
    ("fetch_album", "tweets/services.py", "fetch_album"),
    ("search pages (twython)", "tweets/x_api.py", "search"),
    ("download (safehttp)", "everhash/lib/safehttp.py", "fetch"),
    ("ingest_photo", "pictures/services.py", "ingest_photo"),
    ("  verify and decode", "everhash/lib/images.py", "open_verified"),
    ("  dedupe signature", "pictures/dedupe.py", "compute_signature"),
    ("  renditions", "everhash/lib/images.py", "make_renditions"),
    ("  storage (S3 through django-storages)", "pictures/storage.py", "store_file"),
    ("    of which botocore API calls", "botocore/client.py", "_make_api_call"),
    ("queries (MySQLdb)", "MySQLdb/cursors.py", "execute"),
    ("collages", "collages/services.py", "build_stale_collages"),
]
IDLE_STAGES = [
    ("the whole command", "django/core/management/__init__.py", "execute_from_command_line"),
    ("Django start-up", "django/__init__.py", "setup"),
    ("fetch_album", "tweets/services.py", "fetch_album"),
    ("  claim", "tweets/services.py", "claim_album"),
    ("  search (twython, HTTPS)", "tweets/x_api.py", "search"),
    ("  signature index", "pictures/services.py", "load_signature_index"),
    ("  moderation policy", "pictures/moderation.py", "for_album"),
    ("  FetchRun and album update", "tweets/services.py", "_finish"),
    ("finish_round", "tweets/services.py", "finish_round"),
    ("queries (MySQLdb)", "MySQLdb/cursors.py", "execute"),
]


# --- Databases ---------------------------------------------------------------------------------


def timestamp(value: object) -> float:
    """A DateTimeField as stored (naive UTC: a string in SQLite, a datetime from MySQLdb) -> epoch."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class Database:
    """Templates migrated once (owner and albums created), and a fresh copy per round."""

    kind = ""

    def prepare(self, env: dict[str, str], work: Path, kind: str, tags: list[str]) -> None:
        raise NotImplementedError

    def fresh(self, env: dict[str, str], kind: str, name: str) -> Iterator[tuple[dict[str, str], Callable]]:
        raise NotImplementedError


def setup_albums(env: dict[str, str], kind: str, tags: list[str]) -> None:
    manage(env, "migrate", "--noinput", "-v0")
    run_python(env, SETUP, kind, SINCE_ID, *tags)


class SQLite(Database):
    kind = "sqlite"

    def __init__(self) -> None:
        self.templates: dict[str, Path] = {}

    def prepare(self, env, work, kind, tags):
        template_env = database_environment(env, work / f"template-sqlite-{kind}")
        setup_albums(template_env, kind, tags)
        self.templates[kind] = Path(template_env["EVERHASH_SQLITE_PATH"])

    @contextlib.contextmanager
    def fresh(self, env, kind, name):
        copy_database(self.templates[kind], Path(env["EVERHASH_SQLITE_PATH"]))
        connection = sqlite3.connect(env["EVERHASH_SQLITE_PATH"], timeout=30)

        def query(sql: str) -> list[tuple]:
            return connection.execute(sql).fetchall()

        try:
            yield env, query
        finally:
            connection.close()


class MariaDB(Database):
    """The server of .ci/with-mariadb, named by DB_NAME, DB_USER, DB_PASSWORD and DB_HOST (its socket)."""

    kind = "mariadb"

    def __init__(self) -> None:
        self.user = os.environ["DB_USER"]
        self.password = os.environ["DB_PASSWORD"]
        self.socket = os.environ["DB_HOST"]
        self.dumps: dict[str, Path] = {}
        self.admin = self.connect(None)

    def connect(self, database: str | None):
        import MySQLdb

        kwargs = {"database": database} if database else {}
        connection = MySQLdb.connect(
            unix_socket=self.socket, user=self.user, password=self.password, charset="utf8mb4", **kwargs
        )
        connection.autocommit(True)  # every poll sees the latest commits
        return connection

    def execute(self, sql: str) -> None:
        with self.admin.cursor() as cursor:
            cursor.execute(sql)

    def client(self, program: str) -> list[str]:
        return [program, "--no-defaults", f"--socket={self.socket}", f"--user={self.user}"]

    def client_env(self) -> dict[str, str]:
        return {**os.environ, "MYSQL_PWD": self.password}

    def create(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS `{name}`")
        self.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")

    def round_env(self, env: dict[str, str], name: str) -> dict[str, str]:
        return {**env, "DB_NAME": name, "DB_USER": self.user, "DB_PASSWORD": self.password, "DB_HOST": self.socket}

    def prepare(self, env, work, kind, tags):
        name = f"bench_template_{kind}"
        self.create(name)
        setup_albums(self.round_env(database_environment(env, work / f"template-mariadb-{kind}"), name), kind, tags)
        dump = work / f"template-mariadb-{kind}.sql"
        with dump.open("wb") as out:
            command = [*self.client("mariadb-dump"), "--single-transaction", name]
            subprocess.run(command, env=self.client_env(), stdout=out, check=True)
        self.execute(f"DROP DATABASE `{name}`")
        self.dumps[kind] = dump

    @contextlib.contextmanager
    def fresh(self, env, kind, name):
        self.create(name)
        connection = None
        try:
            with self.dumps[kind].open("rb") as dump:
                subprocess.run([*self.client("mariadb"), name], env=self.client_env(), stdin=dump, check=True)
            connection = self.connect(name)

            def query(sql: str) -> list[tuple]:
                with connection.cursor() as cursor:
                    cursor.execute(sql)
                    return list(cursor.fetchall())

            yield self.round_env(env, name), query
        finally:
            if connection is not None:
                connection.close()
            self.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((Path(self.socket).parent / "mysqld.pid").read_text())
        return None

    def version(self) -> str:
        with self.admin.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            return cursor.fetchone()[0]


# --- One round of one configuration ------------------------------------------------------------

STATE = {
    "pictures": "SELECT COUNT(*), COUNT(DISTINCT content_hash), MAX(added_at) FROM pictures_picture",
    "runs": "SELECT COUNT(*), COALESCE(SUM(pictures_added), 0), COALESCE(SUM(duplicates), 0),"
    " COALESCE(SUM(rejected), 0), MIN(started), MAX(finished), COALESCE(MAX(LENGTH(error)), 0),"
    " COALESCE(SUM(requests_made), 0) FROM tweets_fetchrun WHERE finished IS NOT NULL",
    "stale": "SELECT COUNT(*) FROM albums_album WHERE collage_stale = 1",
}


def state(query: Callable[[str], list[tuple]]) -> dict:
    pictures, distinct, last = query(STATE["pictures"])[0]
    runs, added, duplicates, rejected, first_start, last_finish, error, requests = query(STATE["runs"])[0]
    return {
        "pictures": pictures,
        "distinct": distinct,
        "last_added": timestamp(last) if last else None,
        "runs": runs,
        "added": int(added),
        "duplicates": int(duplicates),
        "rejected": int(rejected),
        "first_start": timestamp(first_start) if first_start else None,
        "last_finish": timestamp(last_finish) if last_finish else None,
        "errors": int(error),
        "requests": int(requests),
        "stale": query(STATE["stale"])[0][0],
    }


def log_problems(text: str) -> dict[str, int]:
    """Lines of a log that say something went wrong (counted, for the report)."""
    lines = text.splitlines()
    return {
        "tracebacks": sum("Traceback" in line for line in lines),
        "errors": sum(" ERROR" in line or "ERROR/" in line or " CRITICAL" in line for line in lines),
        "warnings": sum("WARNING" in line for line in lines),
        "retries": sum("Retry" in line or "retry" in line for line in lines),
        "lost": sum("WorkerLostError" in line for line in lines),
    }


class Context:
    """What the rounds share: the pipeline's environment, the databases, the broker."""

    def __init__(self, env, work, sqlite, mariadb, redis_url, redis, expected, tags, log) -> None:
        self.env, self.work, self.sqlite, self.mariadb = env, work, sqlite, mariadb
        self.redis_url, self.redis, self.expected, self.tags, self.log = redis_url, redis, expected, tags, log
        self.keep = False

    def database(self, config: Config) -> Database:
        return self.sqlite if config.database == "sqlite" else self.mariadb

    def others(self, mariadb: bool) -> dict[str, float]:
        """CPU seconds so far of the shared services (and of this process, the fake X API)."""
        values = {"benchmark + fake X": own_cpu()}
        if self.redis is not None:
            values["redis"] = service_cpu(self.redis)
        if mariadb and (pid := self.mariadb.pid()):
            values["mariadbd"] = cpu_of([pid])
        return values


def run_ingest(ctx: Context, config: Config, n: int, profile: Path | None = None) -> dict:
    folder = ctx.work / f"{config.name}-{n}"
    env = database_environment(ctx.env, folder)
    env.pop("CELERY_BROKER_URL", None)
    database = ctx.database(config)
    with contextlib.ExitStack() as stack:
        env, query = stack.enter_context(database.fresh(env, "ingest", f"bench_{config.name.replace('-', '_')}_{n}"))
        moto_pid = None
        if config.storage == "s3":
            s3_env, moto_pid = stack.enter_context(moto_server(folder))
            env.update(s3_env)
        logs: list[Path] = []
        cpu: dict[str, float] = {}
        if config.workers == 0:
            before = ctx.others(config.database == "mariadb")
            moto_before = cpu_of([moto_pid]) if moto_pid else 0.0
            started = time.time()
            command = [sys.executable, "manage.py", "fetch_tweets"]
            if profile is not None:
                command[1:1] = ["-m", "cProfile", "-o", str(profile)]
            measured = run_measured(command, env=env, output=folder / "cron.txt")
            done = started + measured.seconds
            cpu["fetch_tweets"] = measured.cpu_seconds
            logs.append(folder / "cron.txt")
        else:
            env.update({"CELERY_BROKER_URL": ctx.redis_url, "LOG_LEVEL": "INFO"})
            workers = []
            for w in range(1, config.workers + 1):
                command = [sys.executable, "-m", "celery", "-A", "everhash", "worker", "--pool", "prefork"]
                command += ["--concurrency", "1", "-n", f"w{w}@%h", "--loglevel", "INFO"]
                workers.append(stack.enter_context(Service(f"worker w{w}", command, env=env, log=folder / f"w{w}.log")))
            for worker in workers:
                worker.wait_for_line(" ready.", timeout=60)
            logs += [worker.log for worker in workers]
            from celery import Celery

            app = Celery("everhash-bench", broker=ctx.redis_url, set_as_current=False)
            stack.callback(app.close)
            before = ctx.others(True)
            moto_before = cpu_of([moto_pid]) if moto_pid else 0.0
            workers_before = sum(service_cpu(worker) for worker in workers)
            started = time.time()
            app.send_task("tweets.tasks.dispatch_due_albums")
            deadline = time.monotonic() + RUN_TIMEOUT
            while True:
                now = state(query)
                if now["runs"] >= len(ctx.tags) and now["stale"] == 0:
                    done = time.time()
                    break
                for worker in workers:
                    worker.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{config.name}: not done after {RUN_TIMEOUT} s: {now}")
                time.sleep(POLL_SECONDS)
            cpu["workers"] = sum(service_cpu(worker) for worker in workers) - workers_before
            # Each task logs its line just after building its album's collage: wait for the last one.
            deadline = time.monotonic() + 30
            while sum(w.text().count(" status=ok ") for w in workers) < len(ctx.tags) and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
        after = ctx.others(config.database == "mariadb")
        cpu.update({key: after[key] - before[key] for key in after if key in before})
        if config.workers == 0 and "redis" in cpu:
            del cpu["redis"]  # idle during the cron runs
        if moto_pid:
            cpu["moto"] = cpu_of([moto_pid]) - moto_before
        final = state(query)
        originals = (
            s3_originals(env)
            if config.storage == "s3"
            else sum(1 for p in (folder / "media" / "originals").rglob("*") if p.is_file())
        )
        problems = {key: 0 for key in log_problems("")}
        per_worker: dict[str, int] = {}
        for path in logs:
            text = path.read_text(errors="replace")
            for key, count in log_problems(text).items():
                problems[key] += count
            per_worker[path.stem] = text.count(" status=ok ")
    expected = ctx.expected
    got = (final["pictures"], final["distinct"], final["added"], final["duplicates"], final["rejected"])
    if got != (expected, expected, expected, 0, 0) or final["runs"] != len(ctx.tags) or originals != expected:
        raise RuntimeError(
            f"{config.name} round {n}: expected {expected} pictures stored, all distinct, no duplicate, no rejection,"
            f" {len(ctx.tags)} FetchRuns; got {final} and {originals} originals in the storage. Logs in {folder}"
        )
    if final["errors"]:
        raise RuntimeError(f"{config.name} round {n}: a FetchRun recorded an error; logs in {folder}")
    # About a gigabyte of media per local round; with --keep, the logs stay.
    shutil.rmtree(folder if not ctx.keep else folder / "media", ignore_errors=True)
    to_last = final["last_added"] - started
    return {
        "to_last": to_last,
        "rate": expected / to_last,
        "all_done": done - started,
        "cpu": cpu,
        "problems": problems,
        "per_worker": per_worker if config.workers else {},
        "requests": final["requests"],
    }


def run_idle(ctx: Context, database: Database, albums: int, n: int, profile: Path | None = None) -> dict:
    folder = ctx.work / f"idle-{database.kind}-{n}"
    env = database_environment(ctx.env, folder)
    with database.fresh(env, "idle", f"bench_idle_{n}") as (env, query):
        command = [sys.executable, "manage.py", "fetch_tweets"]
        if profile is not None:
            command[1:1] = ["-m", "cProfile", "-o", str(profile)]
        measured = run_measured(command, env=env, output=folder / "cron.txt")
        final = state(query)
    if final["runs"] != albums or final["requests"] != albums or final["pictures"] or final["errors"]:
        raise RuntimeError(f"idle {database.kind} round {n}: expected {albums} runs of one request each: {final}")
    if not ctx.keep:
        shutil.rmtree(folder, ignore_errors=True)
    span = final["last_finish"] - final["first_start"]
    return {"wall": measured.seconds, "cpu": measured.cpu_seconds, "per_album_ms": span / albums * 1000}


# --- Report ------------------------------------------------------------------------------------


def versions(mariadb: MariaDB) -> str:
    import celery
    import django
    import moto
    import PIL

    redis_version = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True).stdout.split()
    redis_version = next((w.split("=")[1] for w in redis_version if w.startswith("v=")), "?")
    return (
        f"Python {platform.python_version()}, Django {django.__version__}, Pillow {PIL.__version__}, SQLite"
        f" {sqlite3.sqlite_version}, MariaDB {mariadb.version()}, Redis {redis_version}, Celery {celery.__version__},"
        f" moto {moto.__version__}"
    )


def machine_line() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs (`nproc`), {cpu}"


def median(values) -> float:
    return statistics.median(list(values))


def report(results: dict[str, list[dict]], idle: dict[str, list[dict]], ctx: Context, args, started: float) -> str:
    names = list(results)
    rounds = len(results[names[0]])
    base = results.get("baseline")
    out = [
        f"{ctx.expected} pictures in {len(ctx.tags)} albums of {ctx.expected // len(ctx.tags)}, {args.rounds}"
        f" round(s), configurations alternating (reversed order every other round).",
        "",
        "| configuration | "
        + " | ".join(f"round {n} pictures/s" for n in range(1, rounds + 1))
        + " | median pictures/s | vs baseline | to last picture s | all done s | all done vs baseline |",
        "|---|" + "---:|" * (rounds + 5),
    ]
    for name in names:
        runs = results[name]
        cells = [f"{r['rate']:.2f}" for r in runs]
        if base is not None:
            ratio = median(r["rate"] / b["rate"] for r, b in zip(runs, base, strict=True))
            done_ratio = median(b["all_done"] / r["all_done"] for r, b in zip(runs, base, strict=True))
            ratios = f"{ratio:.2f}x", f"{done_ratio:.2f}x"
        else:
            ratios = "", ""
        out.append(
            f"| `{name}`: {CONFIGS[name].label} | {' | '.join(cells)} | **{median(r['rate'] for r in runs):.2f}**"
            f" | {ratios[0]} | {median(r['to_last'] for r in runs):.1f} | {median(r['all_done'] for r in runs):.1f}"
            f" | {ratios[1]} |"
        )
    out += [
        "",
        "Ratios are medians of the per-round ratios against the baseline of the same round (pictures/s; for",
        '"all done", baseline time / time). CPU seconds per round (median), by process:',
        "",
    ]
    keys = ["fetch_tweets", "workers", "moto", "mariadbd", "redis", "benchmark + fake X"]
    out += ["| configuration | " + " | ".join(keys) + " | total | CPU ms per picture |", "|---|" + "---:|" * 8]
    for name in names:
        runs = results[name]
        cells = []
        for key in keys:
            values = [r["cpu"][key] for r in runs if key in r["cpu"]]
            cells.append(f"{median(values):.1f}" if values else "")
        total = median(sum(r["cpu"].values()) for r in runs)
        out.append(f"| `{name}` | {' | '.join(cells)} | {total:.1f} | {total / ctx.expected * 1000:.0f} |")
    problems = {
        name: {kind: sum(r["problems"][kind] for r in runs) for kind in runs[0]["problems"]}
        for name, runs in results.items()
    }
    out += [
        "",
        "Logs (fetch_tweets' output, the workers' logs), all rounds: "
        + "; ".join(
            f"`{name}` " + ", ".join(f"{count} {kind}" for kind, count in counts.items())
            for name, counts in problems.items()
        )
        + ".",
    ]
    shares = [
        f"`{name}` round {n}: " + ", ".join(f"{w} {count}" for w, count in r["per_worker"].items())
        for name, runs in results.items()
        for n, r in enumerate(runs, start=1)
        if r["per_worker"]
    ]
    if shares:
        out.append("Albums fetched per worker (`status=ok` lines): " + "; ".join(shares) + ".")
    if "celery-1" in results or "celery-2" in results:
        per_worker = []
        if "celery-1" in results:
            per_worker.append(f"1 worker {median(r['rate'] for r in results['celery-1']):.2f}")
        if "celery-2" in results:
            per_worker.append(f"2 workers {median(r['rate'] for r in results['celery-2']) / 2:.2f} each")
        if "celery-1" in results and "celery-2" in results:
            scale = median(b["rate"] / a["rate"] for a, b in zip(results["celery-1"], results["celery-2"], strict=True))
            per_worker.append(f"2 workers / 1 worker = {scale:.2f}x")
        out.append("Ingest pictures/s per worker (S3 + MariaDB): " + "; ".join(per_worker) + ".")
    if idle:
        out += [
            "",
            f"Capacity: `fetch_tweets` over {args.idle_albums} albums with nothing new (one search request,"
            " the claim, a FetchRun, the album's update, each):",
            "",
            "| database | "
            + " | ".join(f"round {n} ms per album" for n in range(1, rounds + 1))
            + " | median ms per album | command wall s (median) | command CPU s (median) |",
            "|---|" + "---:|" * (rounds + 3),
        ]
        for kind, runs in idle.items():
            out.append(
                f"| {kind} | {' | '.join(format(r['per_album_ms'], '.1f') for r in runs)}"
                f" | **{median(r['per_album_ms'] for r in runs):.1f}** | {median(r['wall'] for r in runs):.2f}"
                f" | {median(r['cpu'] for r in runs):.2f} |"
            )
        out += ["", "(ms per album: from the first FetchRun's start to the last one's finish, over the albums.)"]
    out += [
        "",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine_line()}; {versions(ctx.mariadb)}."
        f" Load average {os.getloadavg()[0]:.2f} at the end. {time.monotonic() - started:.0f} s in all.",
    ]
    return "\n".join(out)


# --- Main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every configuration (default 2)")
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma-separated, from {', '.join(CONFIGS)} (default: all; ratios need baseline)",
    )
    parser.add_argument("--albums", type=int, default=4, help="albums the pictures are spread over (default 4)")
    parser.add_argument("--idle-albums", type=int, default=50, help="albums of the capacity run (0: skip it)")
    parser.add_argument("--pictures", type=int, default=300, help="use only the first N of the 300 (quick tries)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) at the end")
    parser.add_argument("--profile", action="store_true", help="then one cron-prod run under cProfile")
    args = parser.parse_args()
    configs = [CONFIGS[name] for name in args.configs.split(",")]

    if not os.environ.get("DB_HOST"):
        if not Path(MARIADBD).exists():
            sys.exit("MariaDB is not installed (apt-get install mariadb-server): the benchmark needs it.")
        # A throwaway MariaDB on a socket, removed afterwards: run again under .ci/with-mariadb.
        wrapper = str(ROOT / ".ci" / "with-mariadb")
        command = [wrapper, sys.executable, "-m", "bench.production", *sys.argv[1:]]
        os.execv(wrapper, command)  # noqa: S606
    if not Path(REDIS_SERVER).exists():
        sys.exit("redis-server is not installed (apt-get install redis-server): the benchmark needs it.")

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds: workers, servers, databases and the temp folder go

    signal.signal(signal.SIGTERM, terminate)
    started = time.monotonic()
    folder, manifest = load_pictures(300, log)
    entries = manifest["pictures"][: args.pictures]
    tags = [f"{HASHTAG}{n}" for n in range(1, args.albums + 1)]
    idle_tags = [f"{IDLE_TAG}{n}" for n in range(1, args.idle_albums + 1)]
    log(describe(entries))
    results: dict[str, list[dict]] = {config.name: [] for config in configs}
    idle: dict[str, list[dict]] = {}
    work = Path(tempfile.mkdtemp(prefix="everhash-bench-production-"))
    try:
        with contextlib.ExitStack() as stack:
            # Enough search requests for any number of rounds (X's is 450 per 15 minutes).
            api_url, ca_path = stack.enter_context(fake_x_api(work, folder, entries, tags=tags, rate_limit=10**9))
            env = pipeline_environment(work, api_url, ca_path)
            sqlite, mariadb = SQLite(), MariaDB()
            stack.callback(mariadb.admin.close)
            for database in (sqlite, mariadb):
                database.prepare(env, work, "ingest", tags)
                if idle_tags:
                    database.prepare(env, work, "idle", idle_tags)
            log(f"templates migrated (SQLite, MariaDB {mariadb.version()}); fake X API on {api_url}")
            redis_url, redis = None, None
            if any(config.workers for config in configs):
                redis_url, redis = stack.enter_context(redis_server(work / "redis"))
                log(f"redis-server on {redis_url}")
            ctx = Context(env, work, sqlite, mariadb, redis_url, redis, len(entries), tags, log)
            ctx.keep = args.keep
            for n in range(1, args.rounds + 1):
                order = configs if n % 2 else configs[::-1]
                for config in order:
                    result = run_ingest(ctx, config, n)
                    results[config.name].append(result)
                    log(
                        f"round {n} {config.name}: {result['rate']:.2f} pictures/s, last picture at"
                        f" {result['to_last']:.1f} s, all done at {result['all_done']:.1f} s,"
                        f" CPU {json.dumps({k: round(v, 1) for k, v in result['cpu'].items()})}"
                    )
                if idle_tags:
                    for database in (sqlite, mariadb) if n % 2 else (mariadb, sqlite):
                        result = run_idle(ctx, database, len(idle_tags), n)
                        idle.setdefault(database.kind, []).append(result)
                        log(
                            f"round {n} idle {database.kind}: {result['per_album_ms']:.1f} ms per album,"
                            f" command {result['wall']:.2f} s"
                        )
            idle = {kind: idle[kind] for kind in ("sqlite", "mariadb") if kind in idle}
            profile_lines: list[str] = []
            if args.profile:
                profile = work / "cron-prod.prof"
                result = run_ingest(ctx, CONFIGS["cron-prod"], 0, profile=profile)
                log(f"profiled cron-prod: {result['to_last']:.1f} s to the last picture")
                profile_lines = profile_summary(profile, STAGES)
                if idle_tags:
                    profile = work / "idle.prof"
                    result = run_idle(ctx, mariadb, len(idle_tags), 0, profile=profile)
                    log(f"profiled idle run on MariaDB: {result['per_album_ms']:.1f} ms per album")
                    profile_lines += [
                        "",
                        f"Profile of one more idle run on MariaDB ({len(idle_tags)} albums,"
                        f" {result['per_album_ms']:.1f} ms per album under cProfile):",
                        "",
                        *profile_summary(profile, IDLE_STAGES),
                    ]
            print(report(results, idle, ctx, args, started))
            if profile_lines:
                print("\nProfile of one more `cron-prod` run (cProfile, which slows Python-heavy code down):\n")
                print("\n".join(profile_lines))
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
