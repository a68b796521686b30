"""What bench/api.py and bench/pages.py share: a throwaway database, gunicorn, a load generator.

- `throwaway_folder()`: a temporary folder for the SQLite file and the server's var dir, removed
  afterwards (unless kept);
- `server_environment()`: production settings (DEBUG off, SECRET_KEY, ALLOWED_HOSTS=127.0.0.1) on
  that folder, always SQLite;
- `fill_database()`: migrates and fills one public album with generated picture rows (files need
  not exist: every rendition's key is set, nothing is on disk);
- `Gunicorn`: gunicorn with N sync workers on a free port of 127.0.0.1, stopped on exit; a
  config file of ours times every request inside the worker (`server_times()`);
- `load()` and `summarise()`: bounded GETs from a thread pool, requests/s, median and p99.

The load generator runs on the same machine as the server, so absolute figures depend on the
machine and on whatever else runs there; ratios measured in one run against one server are the
point.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from everhash.testing import processes

ROOT = Path(__file__).resolve().parent.parent
HASHTAG = "benchalbum"
# The header that names a request in the server's timing log (see TIMING_CONFIG).
LABEL_HEADER = "X-Bench-Label"
CLEAR_CACHE = {"X-Bench-Cache": "clear"}


@contextlib.contextmanager
def throwaway_folder(keep: bool = False, prefix: str = "everhash-bench-") -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if keep:
            print(f"# kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def server_environment(folder: Path) -> dict[str, str]:
    return {
        **processes.production_environment(folder),  # always a throwaway SQLite file
        "SECURE_SSL_REDIRECT": "false",  # plain http on loopback
        # Throttling stays on (its cost is part of every request) with rates the load never reaches.
        "EVERHASH_API_ANON_RATE": "100000000/min",
        "EVERHASH_API_USER_RATE": "100000000/min",
        "LOG_LEVEL": "ERROR",
    }


FILL = """
import sys
from datetime import datetime, timedelta

import django
django.setup()
from django.core.management import call_command
from django.db import transaction

from albums.models import Album
from albums.services import pictures_changed
from everhash.testing.builders import picture_fields
from pictures.models import Picture
from users.models import User

count, hashtag, start, step = int(sys.argv[1]), sys.argv[2], datetime.fromisoformat(sys.argv[3]), int(sys.argv[4])
call_command("migrate", verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG off: hashed names (whitenoise)
owner = User.objects.create_user("bench@example.com", None)
newest = start + timedelta(seconds=step * (count - 1) + 30)
album = Album.objects.create(
    owner=owner, hashtag=hashtag, title="Benchmark", description="One generated picture every minute.",
    last_fetch_at=newest, last_success_at=newest, next_fetch_at=newest + timedelta(minutes=20),
)
batch = []
with transaction.atomic():
    for n in range(count):
        fields = picture_fields(n)  # the test builders' defaults: post id FIRST_POST_ID + n
        digest = fields["content_hash"]
        fields.update(
            permalink=f"https://x.com/author{n % 500}/status/{fields['post_id']}",
            author_handle=f"author{n % 500}", author_name=f"Author number {n % 500}",
            text="A generated post #" + hashtag, like_count=(n * 7919) % 1000,
            posted_at=start + timedelta(seconds=step * n), added_at=start + timedelta(seconds=step * n + 30),
            alt_text="A generated picture" if n % 3 else "", width=4000, height=3000,
            histogram=bytes(512), structure_hash=digest[:16], original_key=f"originals/{digest[:2]}/{digest}.jpg",
            renditions={
                name: {"key": f"renditions/{digest[:2]}/{digest}/{name}.jpg", "width": w, "height": h}
                for name, w, h in (("thumb", 200, 200), ("square", 400, 400), ("medium", 1024, 768),
                                   ("large", 2048, 1536))
            },
        )
        batch.append(Picture(album=album, **fields))
        if len(batch) == 5000:
            Picture.objects.bulk_create(batch)
            batch = []
    Picture.objects.bulk_create(batch)
pictures_changed(album_ids=[album.pk], collage_stale=False)  # as a fetch does: the version, the count
print(Picture.objects.filter(album=album).count())
"""


def fill_database(env: dict[str, str], pictures: int, start: datetime, step_seconds: int = 60) -> None:
    """One public album `HASHTAG` of `pictures` visible pictures, the n-th posted at
    start + n * step and added 30 s later (so the newest is added at start + (pictures-1) * step + 30 s);
    likes are (n * 7919) % 1000, 500 authors in turn. The album was last fetched when its newest
    picture was added and is due again 20 minutes later."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", FILL, str(pictures), HASHTAG, start.isoformat(), str(step_seconds)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    stored = int(result.stdout.strip().splitlines()[-1])
    assert stored == pictures, f"stored {stored} pictures, wanted {pictures}"
    print(f"# {stored:,} picture rows generated in {time.perf_counter() - started:.1f} s", file=sys.stderr)


# A gunicorn config file: times each request in the worker, from before the WSGI environ is built
# to after the response is written (what gunicorn's access log %(D)s measures), and appends
# "<label>\t<microseconds>" to a file per worker. The label is the X-Bench-Label request header.
# A request with `X-Bench-Cache: clear` first empties the worker's cache (CLEAR_CACHE): it is
# answered as the first view after a change to the album is, from the database.
TIMING_CONFIG = """
import os
import time

_FOLDER = {folder!r}
_log = None


def pre_request(worker, req):
    req.bench_started = time.perf_counter()
    if ("X-BENCH-CACHE", "clear") in req.headers:  # a page built as after a change to the album
        from django.core.cache import cache

        cache.clear()


def post_request(worker, req, environ, resp):
    global _log
    started = getattr(req, "bench_started", None)
    if started is None:
        return
    elapsed = time.perf_counter() - started
    if _log is None:
        _log = open(os.path.join(_FOLDER, f"worker-{{os.getpid()}}.log"), "a", buffering=1)
    _log.write(f"{{environ.get('HTTP_X_BENCH_LABEL', '-')}}\\t{{elapsed * 1e6:.0f}}\\n")
"""


class Gunicorn(processes.Gunicorn):
    """`with Gunicorn(env, folder, workers=2) as server:` gunicorn on 127.0.0.1:server.port, with
    TIMING_CONFIG as its config file: each request timed inside the worker (`server_times()`)."""

    def __init__(self, env: dict[str, str], folder: Path, workers: int = 2, ready_path: str = "/api/v1/ping/"):
        self.timing_folder = folder / "timing"
        self.timing_folder.mkdir(exist_ok=True)
        config = folder / "gunicorn_bench.py"
        config.write_text(TIMING_CONFIG.format(folder=str(self.timing_folder)))
        args = [f"--config={config}", f"--workers={workers}", "--log-level=warning"]
        super().__init__(env, args, ready_path=ready_path)

    def server_times(self, label: str) -> list[float]:
        """Seconds spent in the workers on each request labelled `label` so far."""
        times = []
        for log in self.timing_folder.glob("worker-*.log"):
            for line in log.read_text().splitlines():
                name, _, micros = line.rpartition("\t")
                if name == label:
                    times.append(int(micros) / 1e6)
        return times


get = processes.http_get


def load(
    port: int,
    path: str,
    requests: int,
    concurrency: int,
    headers: dict[str, str] | None = None,
    expect: int = 200,
    max_seconds: float | None = None,
) -> dict:
    """Up to `requests` GETs of `path` from `concurrency` threads (http.client, one connection
    per request, as gunicorn's sync workers close them); throughput and latencies. With
    `max_seconds`, no request starts after that long (so slow pages stay bounded in time too).

    `{n}` in the path becomes the request's number: a different URL each time, which a page
    cache cannot answer (an unknown query parameter is otherwise ignored).
    """
    latencies: list[float] = []
    failures = 0
    issued = 0
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + max_seconds if max_seconds else None

    def client() -> None:
        nonlocal failures, issued
        while True:
            with lock:
                if issued >= requests or (deadline is not None and time.perf_counter() >= deadline):
                    return
                issued += 1
                number = issued
            sent = time.perf_counter()
            try:
                status, _ = get(port, path.format(n=f"{time.monotonic_ns()}-{number}"), headers)
            except OSError:  # refused, reset, timed out: a failed request
                status = 0
            elapsed = time.perf_counter() - sent
            with lock:
                latencies.append(elapsed)
                failures += status != expect

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    duration = time.perf_counter() - started
    return {"duration": duration, "latencies": latencies, "failures": failures}


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))]


def summarise(runs: list[dict]) -> dict:
    latencies = sorted(latency for run in runs for latency in run["latencies"])
    duration = sum(run["duration"] for run in runs)
    return {
        "requests": len(latencies),
        "failures": sum(run["failures"] for run in runs),
        "rps": len(latencies) / duration,
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        # Each round's throughput, to show the spread between rounds.
        "round_rps": [len(run["latencies"]) / run["duration"] for run in runs],
    }


def share(ratio: float) -> str:
    """A ratio as a percentage, with a decimal when it is small (0.2%, not 0%)."""
    return f"{ratio:.1%}" if ratio < 0.1 else f"{ratio:.0%}"


def round_ratios(results: dict[str, dict], baseline: str) -> str:
    """Each round's throughput as a share of the baseline's in the same round, per endpoint."""
    base = results[baseline]["round_rps"]
    return "; ".join(
        f"{name}: " + ", ".join(share(rps / b) for rps, b in zip(r["round_rps"], base, strict=True))
        for name, r in results.items()
        if name != baseline
    )


def machine() -> str:
    """The machine in one line: CPUs, CPU model, Python, Django, SQLite, load average."""
    import sqlite3

    import django

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    load1, load5, _ = os.getloadavg()
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs (nproc), {model}; Python {platform.python_version()}, "
        f"Django {django.get_version()}, SQLite {sqlite3.sqlite_version}; load average {load1:.2f} (1 min), "
        f"{load5:.2f} (5 min)"
    )
