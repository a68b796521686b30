"""What open event walls cost the server: 100 simulated walls polling feed.json, served by gunicorn.

    .venv/bin/python -m bench.wall               # 100 walls, 2 workers, 3 x 30 s: about 2 minutes

All on 127.0.0.1 in a throwaway folder (bench/_server.py): a fresh SQLite database with one
public album of --pictures generated pictures, gunicorn with 2 sync workers (DEBUG off). Each
simulated wall is a thread that does what static/js/slideshow.js does: it loads the first page
of `feed.json`, then every --poll seconds asks `feed.json?since=<journal>` with the ETag it
holds. Three runs of --seconds each, on the same server:

- **idle**: nothing changes; every poll is answered 304;
- **busy**: a picture is hidden every --change-every seconds (an event with a moderator at
  work); each change costs every wall one 200 and a `?visible=` check;
- **no ETag** (the baseline): the walls poll without If-None-Match, so every poll is a 200 with
  the first page (what a wall without conditional requests would cost).

For each run: requests/s served, the share answered 304, the median server time per request,
and the CPU the gunicorn processes used (user + system time from /proc, as a share of one core).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._server import (
    HASHTAG,
    LABEL_HEADER,
    ROOT,
    Gunicorn,
    fill_database,
    machine,
    server_environment,
    throwaway_folder,
)

FEED = f"/album/{HASHTAG}/feed.json"

HIDE = """
import sys, time
import django
django.setup()
from albums.models import Album
from pictures.models import Picture
from pictures.moderation import hide
album = Album.objects.get(hashtag=sys.argv[1])
every, until = float(sys.argv[2]), time.monotonic() + float(sys.argv[3])
ids = list(album.pictures.visible().order_by("-added_at").values_list("pk", flat=True)[:1000])
while time.monotonic() < until:
    time.sleep(every)
    hide(pictures=Picture.objects.filter(pk=ids.pop()), by=None)
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (gunicorn's master and workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


class Wall(threading.Thread):
    def __init__(self, port: int, poll: float, until: float, conditional: bool, label: str, stats: dict) -> None:
        super().__init__(daemon=True)
        self.port, self.poll, self.until, self.conditional, self.label = port, poll, until, conditional, label
        self.stats = stats

    def get(self, path: str, etag: str | None = None) -> tuple[int, str | None, bytes]:
        headers = {LABEL_HEADER: self.label}
        if etag and self.conditional:
            headers["If-None-Match"] = etag
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        with self.stats["lock"]:
            self.stats[response.status] = self.stats.get(response.status, 0) + 1
        return response.status, response.getheader("ETag"), body

    def run(self) -> None:
        time.sleep(random.uniform(0, self.poll))  # walls opened at different moments
        _, _, body = self.get(FEED)
        data = json.loads(body)
        journal, version, etag = data["journal"], data["version"], None
        held = [p["id"] for p in data["pictures"]]
        while time.monotonic() + self.poll < self.until:
            time.sleep(self.poll)
            status, new_etag, body = self.get(f"{FEED}?since={journal}", etag)
            if status != 200:
                continue
            etag = new_etag
            data = json.loads(body)
            journal = data["journal"]
            if data["version"] != version:  # the album changed: which held pictures are still in it
                version = data["version"]
                self.get(f"{FEED}?visible={','.join(map(str, held))}")


def run(port: int, server: Gunicorn, args: argparse.Namespace, label: str, *, conditional: bool, env: dict) -> dict:
    stats: dict = {"lock": threading.Lock()}
    until = time.monotonic() + args.seconds
    hider = None
    if label == "busy":
        hider = subprocess.Popen(
            [sys.executable, "-c", HIDE, HASHTAG, str(args.change_every), str(args.seconds - 2)], cwd=ROOT, env=env
        )
    cpu_before, started = cpu_seconds(server.process.pid), time.monotonic()
    walls = [Wall(port, args.poll, until, conditional, label, stats) for _ in range(args.walls)]
    for wall in walls:
        wall.start()
    for wall in walls:
        wall.join()
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(server.process.pid) - cpu_before
    if hider is not None:
        hider.wait(timeout=60)
    requests = sum(v for k, v in stats.items() if isinstance(k, int))
    times = server.server_times(label)
    return {
        "requests": requests,
        "rps": requests / elapsed,
        "not_modified": stats.get(304, 0) / requests,
        "errors": sum(v for k, v in stats.items() if isinstance(k, int) and k >= 400),
        "server_ms": statistics.median(times) * 1000 if times else 0.0,
        "cpu": cpu / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--walls", type=int, default=100, help="open walls (100)")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between polls (2, the default)")
    parser.add_argument("--seconds", type=float, default=30, help="length of each run (30)")
    parser.add_argument("--change-every", type=float, default=10, help="seconds between hides in the busy run (10)")
    parser.add_argument("--pictures", type=int, default=5000, help="pictures in the album (5,000)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (2)")
    args = parser.parse_args()

    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    start = newest - timedelta(minutes=args.pictures)
    results = {}
    with throwaway_folder() as folder:
        env = server_environment(folder)
        fill_database(env, args.pictures, start)
        with Gunicorn(env, folder, args.workers) as server:
            for label, conditional in (("idle", True), ("busy", True), ("no ETag", False)):
                results[label] = run(server.port, server, args, label, conditional=conditional, env=env)
    print(
        f"{args.walls} walls polling every {args.poll:g} s for {args.seconds:g} s each run, album of "
        f"{args.pictures:,} pictures, gunicorn {args.workers} sync workers, SQLite, DEBUG off; {machine()}\n"
    )
    print(
        "| run | requests/s | answered 304 | errors | server median ms | gunicorn CPU (share of one core) "
        "| CPU ms per request |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in results.items():
        print(
            f"| {label} | {r['rps']:.1f} | {r['not_modified']:.0%} | {r['errors']} | {r['server_ms']:.2f} "
            f"| {r['cpu']:.0%} | {1000 * r['cpu'] / r['rps']:.1f} |"
        )
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
