"""The site under load: a realistic mix of pages against gunicorn as docs/deploy.rst runs it.

    .venv/bin/python -m bench.load                        # SQLite, 10/50/200 clients: about 6 minutes
    .ci/with-mariadb .venv/bin/python -m bench.load       # the same on a throwaway MariaDB database
    .venv/bin/python -m bench.load --clients 50 --seconds 20 --rounds 1

What it does, all on 127.0.0.1 in a throwaway folder (deleted afterwards unless --keep):
1. migrates a fresh database (SQLite in the folder, or a new database on the MariaDB server that
   .ci/with-mariadb started, when DB_HOST is set) and fills one public album with 100,000 picture
   rows (bench/_server.py's fill: one a minute, 500 authors, bulk INSERTs);
2. starts gunicorn exactly as the systemd units of docs/deploy.rst do: the page server
   (`gunicorn -c python:everhash.gunicorn_conf everhash.wsgi`) with GUNICORN_WORKERS=2 (sync),
   DEBUG off, production settings, its JSON access log on, one shared Redis cache
   (EVERHASH_CACHE_URL, a private redis-server; --cache local: each worker its own); and beside it the health instance
   (`-c python:everhash.gunicorn_health_conf`), to which /healthz goes as nginx sends it
   (--no-health-instance: the page server answers /healthz itself, as before);
3. for each client count (10, 50, 200), in alternating rounds: the trivial view (/api/v1/ping/,
   no database) for --ping-seconds, then the mix for --seconds, each from that many closed-loop
   clients (asyncio, one connection per request: sync workers close them). The mix (MIX below):
   the index, the album page and its next page, popular, a by-author page (one of the 500 authors
   at random), the wall's JSON feed, the API's picture list, conditional requests (If-None-Match
   with the ETag last seen for that page: 304 when nothing changed) and /healthz;
4. all the while a load balancer's probe: GET /healthz every --probe-interval seconds, each on
   its own connection whether or not the previous one has answered, measured apart from the mix;
5. prints, per client count: the mix's requests/s, p50, p99 and errors, /healthz's p50, p99 and
   worst, the ping's requests/s in the same rounds (the machine's yardstick) and the mix's share
   of it, then each kind's p50/p99 as the clients saw them, and each kind's time inside the
   workers (gunicorn's access log). The exit status is 1 when any request failed.

A request fails when it gets no answer within --timeout seconds, its connection breaks, or the
status is not the expected one (200, or 304 for a conditional request; 200 or 503 for /healthz,
which reports the fetch's age: the generated album was last fetched when it was filled).

The load generator shares the machine's cores with the server: absolute figures depend on the
machine and on whatever else runs there. The ping rounds, alternating with the mix in the same run,
are the yardstick for comparing runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import multiprocessing
import os
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._server import HASHTAG, fill_database, machine, percentile, server_environment, throwaway_folder
from everhash.testing import processes

ALBUM = f"/album/{HASHTAG}/"
AUTHORS = 500  # bench/_server.py's fill: author{n % 500}
PING = "/api/v1/ping/"
# (kind, weight, path or None for a conditional request): about what visitors and programs ask for.
MIX = [
    ("index", 10, "/"),
    ("album page", 18, ALBUM),
    ("album next page", 10, f"{ALBUM}?page=2"),
    ("popular", 8, f"{ALBUM}popular/"),
    ("by author", 10, None),  # a random author's page
    ("wall feed", 10, f"{ALBUM}feed.json"),
    ("API picture list", 12, f"/api/v1/albums/{HASHTAG}/pictures/"),
    ("conditional (If-None-Match)", 20, None),  # one of the pages above, with its last ETag
    ("/healthz", 2, "/healthz"),
]
CONDITIONAL = ["index", "album page", "album next page", "popular", "wall feed", "API picture list"]


@dataclass
class Result:
    kind: str
    status: int  # 0: no answer (refused, reset, timed out)
    seconds: float
    ok: bool  # the status was one of those expected


@dataclass
class Phase:
    results: list[Result] = field(default_factory=list)
    duration: float = 0.0

    def latencies(self, kind: str | None = None) -> list[float]:
        return sorted(r.seconds for r in self.results if kind is None or r.kind == kind)


async def http_get(port: int, path: str, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """One GET on a connection of its own; (status, ETag). Raises OSError or TimeoutError."""

    async def exchange() -> tuple[int, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.read()  # the body, to the end: the whole answer is part of the latency
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        etag = ""
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "etag":
                etag = value.strip()
        return int(status_line.split()[1]), etag

    return await asyncio.wait_for(exchange(), timeout)


class Mix:
    """Picks the next request of the mix; remembers each page's last ETag for conditional ones."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.kinds = [kind for kind, _, _ in MIX]
        self.weights = [weight for _, weight, _ in MIX]
        self.paths = {kind: path for kind, _, path in MIX}
        self.etags: dict[str, str] = {}

    def next(self) -> tuple[str, str, dict[str, str], set[int]]:
        """(kind, path, headers, expected statuses)."""
        kind = self.random.choices(self.kinds, self.weights)[0]
        if kind == "by author":
            return kind, f"{ALBUM}by/author{self.random.randrange(AUTHORS)}/", {}, {200}
        if kind == "conditional (If-None-Match)":
            known = [name for name in CONDITIONAL if name in self.etags]
            if known:
                page = self.random.choice(known)
                # 200 when the page changed since (a new day, a new picture): still a right answer.
                return kind, self.paths[page], {"If-None-Match": self.etags[page]}, {304, 200}
            kind = "album page"
        if kind == "/healthz":
            return kind, self.paths[kind], {}, {200, 503}
        return kind, self.paths[kind], {}, {200}


async def run_phase(
    port: int,
    *,
    health_port: int,
    clients: int,
    seconds: float,
    timeout: float,
    mix: Mix | None,
    probe: Phase | None,
    interval: float,
) -> Phase:
    """`clients` closed-loop clients for `seconds` (no request starts after that; the last ones are
    waited for); the mix, or the ping alone when `mix` is None."""
    phase = Phase()
    started = time.perf_counter()
    deadline = started + seconds

    async def one(kind: str, path: str, headers: dict[str, str], expected: set[int], into: Phase) -> None:
        sent = time.perf_counter()
        try:
            target = health_port if path == "/healthz" else port  # as nginx routes them
            status, etag = await http_get(target, path, headers, timeout)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            status, etag = 0, ""
        ok = status in expected
        into.results.append(Result(kind, status, time.perf_counter() - sent, ok))
        if ok and mix is not None and etag and "If-None-Match" not in headers:
            mix.etags[kind] = etag

    async def client() -> None:
        while time.perf_counter() < deadline:
            if mix is None:
                await one("ping", PING, {}, {200}, phase)
            else:
                await one(*mix.next(), phase)

    async def prober() -> None:
        probes = []
        while time.perf_counter() < deadline:
            probes.append(asyncio.ensure_future(one("probe", "/healthz", {}, {200, 503}, probe)))
            await asyncio.sleep(interval)
        await asyncio.gather(*probes)

    tasks = [client() for _ in range(clients)]
    if probe is not None:
        tasks.append(prober())
    await asyncio.gather(*tasks)
    phase.duration = time.perf_counter() - started
    return phase


ACCESS_LINE = re.compile(r'"GET (\S+) HTTP/1\.[01]\\?" (\d{3}) \S+ (\d+)ms')


def kind_of(path: str, status: int) -> str:
    """The mix's kind of a request in gunicorn's access log (a 304 answered a conditional one)."""
    if status == 304:
        return "conditional (If-None-Match)"
    if "/by/" in path:
        return "by author"
    for kind, _, known in MIX:
        if known == path:
            return kind
    return "ping" if path == PING else "other"


def server_times(log: Path) -> dict[str, list[float]]:
    """Seconds each request spent in a worker, per kind, from gunicorn's access log (%(M)s)."""
    times: dict[str, list[float]] = {}
    for match in ACCESS_LINE.finditer(log.read_text(errors="replace")):
        path, status, millis = match.group(1), int(match.group(2)), int(match.group(3))
        times.setdefault(kind_of(path, status), []).append(millis / 1000)
    return times


def ms(values: list[float], fraction: float | None = None) -> str:
    if not values:
        return "-"
    value = statistics.median(values) if fraction is None else percentile(values, fraction)
    return f"{value * 1000:,.0f}" if value >= 0.01 else f"{value * 1000:.1f}"


def mariadb_database() -> contextlib.AbstractContextManager[str | None]:
    """A new database on the server of .ci/with-mariadb (DB_HOST and friends), or None for SQLite."""
    if not os.environ.get("DB_HOST"):
        return contextlib.nullcontext(None)
    database = {
        "USER": os.environ.get("DB_USER", ""),
        "PASSWORD": os.environ.get("DB_PASSWORD", ""),
        "HOST": os.environ["DB_HOST"],
        "PORT": os.environ.get("DB_PORT", ""),
    }
    return processes.new_mariadb_database(database, prefix="everhash_load_")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, default=100_000, help="picture rows in the album (100,000)")
    parser.add_argument("--clients", default="10,50,200", help="client counts, comma-separated (10,50,200)")
    parser.add_argument("--seconds", type=float, default=30, help="seconds of the mix per round (30)")
    parser.add_argument("--ping-seconds", type=float, default=8, help="seconds of the ping per round (8)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating ping/mix rounds per client count (2)")
    parser.add_argument("--workers", type=int, default=2, help="GUNICORN_WORKERS (2)")
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS (the config's default)")
    parser.add_argument("--timeout", type=float, default=30, help="seconds before a request counts as failed (30)")
    parser.add_argument("--probe-interval", type=float, default=0.5, help="seconds between /healthz probes (0.5)")
    parser.add_argument(
        "--no-health-instance",
        action="store_true",
        help="/healthz from the page server itself (without everhash.gunicorn_health_conf beside it)",
    )
    parser.add_argument(
        "--cache",
        choices=["redis", "local"],
        default="redis",
        help="redis: one shared cache (EVERHASH_CACHE_URL, a private redis-server); local: each worker its own",
    )
    parser.add_argument(
        "--ingest",
        type=int,
        default=0,
        metavar="CLIENTS",
        help="then the mix at this many clients alone, with fetch_tweets ingesting, and with it at nice 10",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, logs) afterwards")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]

    began = datetime.now(UTC)
    newest = began.replace(second=0, microsecond=0) - timedelta(minutes=1)
    start = newest - timedelta(seconds=60 * (args.pictures - 1) + 30)
    with (
        throwaway_folder(args.keep, prefix="everhash-load-") as folder,
        mariadb_database() as db_name,
        shared_cache(folder, enabled=args.cache == "redis") as cache_url,
    ):
        env = {**server_environment(folder), "GUNICORN_WORKERS": str(args.workers), "LOG_LEVEL": "WARNING"}
        if cache_url:
            env["EVERHASH_CACHE_URL"] = cache_url
        if db_name:
            env["DB_NAME"] = db_name
        if args.threads:
            env["GUNICORN_THREADS"] = str(args.threads)
        fill_database(env, args.pictures, start)
        server = processes.Gunicorn(
            env, ["-c", "python:everhash.gunicorn_conf"], log=folder / "gunicorn.log", bind_variable="GUNICORN_BIND"
        )
        with server, health_instance(env, folder, server.port, enabled=not args.no_health_instance) as health:
            ports = (server.port, health.port if health else server.port)
            report = asyncio.run(measure(*ports, args, levels))
            if args.ingest:
                report["ingest"] = asyncio.run(measure_ingest(*ports, args, env, folder))
        times = server_times(folder / "gunicorn.log")
        database = ("MariaDB" if db_name else "SQLite") + (", Redis cache" if cache_url else ", per-worker cache")
    print(
        f"{args.pictures:,} pictures in one album, gunicorn -c python:everhash.gunicorn_conf, {args.workers} workers"
        f"{f' x {args.threads} threads' if args.threads else ''}, {database}, DEBUG off; "
        f"{args.rounds} rounds per client count of {args.ping_seconds:g} s ping then {args.seconds:g} s mix; "
        f"/healthz probed every {args.probe_interval:g} s\n"
    )
    print(report["table"])
    print(report["kinds"])
    print("\nServer time per kind, whole run (gunicorn's access log %(M)s: time in the worker, CPU waits included):\n")
    print("| kind | requests | median ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for kind, values in sorted(times.items()):
        values.sort()
        print(f"| {kind} | {len(values):,} | {ms(values)} | {ms(values, 0.99)} |")
    if args.ingest:
        print(report["ingest"])
    print(f"\n{began:%Y-%m-%d %H:%M} UTC; {machine()}")
    return 1 if report["failures"] else 0


@contextlib.contextmanager
def shared_cache(folder: Path, *, enabled: bool):
    """A private redis-server for EVERHASH_CACHE_URL (the shared cache of docs/deploy.rst), or None."""
    if not enabled:
        yield None
        return
    with processes.redis_server(folder) as (url, _):
        yield url


INGEST_PICTURES = 300  # bench/ingest.py's generated photos, 0.3 to 12 megapixels
CREATE_ALBUM = """
import django
django.setup()
import sys
from albums.models import Album
from users.models import User
Album.objects.create(owner=User.objects.get(email="bench@example.com"), hashtag=sys.argv[1], title="Ingesting")
"""


def _serve_fake_x_api(folder: Path, hashtag: str, connection, stop) -> None:
    """In a process of its own, so serving photos over TLS does not slow this load generator."""
    from bench import ingest

    pictures, manifest = ingest.load_pictures(INGEST_PICTURES, lambda line: print(f"# {line}", file=sys.stderr))
    with ingest.fake_x_api(folder, pictures, manifest["pictures"], tags=(hashtag,)) as (api_url, ca_path):
        connection.send((api_url, ca_path))
        stop.wait()


@contextlib.contextmanager
def fake_x_api_process(folder: Path, hashtag: str):
    """bench/ingest.py's fake X API with its 300 photos under `hashtag`; yields (URL, CA path)."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    stop = context.Event()
    server = context.Process(target=_serve_fake_x_api, args=(folder, hashtag, sending, stop), daemon=True)
    server.start()
    try:
        if not receiving.poll(300):
            raise RuntimeError("the fake X API did not start within 300 s")
        yield receiving.recv()
    finally:
        stop.set()
        server.join(30)
        if server.is_alive():
            server.kill()


@contextlib.contextmanager
def ingesting(env: dict[str, str], folder: Path, *, hashtag: str, nice: int):
    """`manage.py fetch_tweets` storing bench/ingest.py's 300 photos into a new album `hashtag`
    from a loopback fake X API, started at `nice` as cron would run it; yields a dict that gets
    the run's seconds and stored pictures when it is stopped (or has finished)."""
    from bench import ingest  # numpy, Pillow: only when ingesting

    processes.run_python(env, CREATE_ALBUM, hashtag)
    with fake_x_api_process(folder, hashtag) as (api_url, ca_path):
        fetch_env = {
            **env,
            "EVERHASH_X_API_URL": api_url,
            "EVERHASH_X_BEARER_TOKEN": ingest.BEARER,
            "EVERHASH_CA_BUNDLE": ca_path,
            "EVERHASH_MEDIA_HOSTS": "127.0.0.1",
            "EVERHASH_ALLOW_PRIVATE_ADDRESSES": "127.0.0.1",
            "EVERHASH_MAX_IMAGE_PIXELS": str(ingest.MAX_IMAGE_PIXELS),
            "EVERHASH_MAX_IMAGE_BYTES": str(ingest.MAX_IMAGE_BYTES),
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(folder / "mail"),
        }
        command = ["nice", "-n", str(nice), sys.executable, "manage.py", "fetch_tweets", "--album", hashtag]
        command += ["--max-pages", "10"]
        run: dict = {"nice": nice}
        started = time.perf_counter()
        fetch = processes.Service("fetch_tweets", command, env=fetch_env, log=folder / f"{hashtag}.log")
        try:
            yield run
        finally:
            run["running"] = fetch.process.poll() is None
            fetch.stop()
            run["seconds"] = time.perf_counter() - started
            stored = processes.run_python(
                env,
                "import django, sys; django.setup(); from pictures.models import Picture; "
                "print(Picture.objects.filter(album__hashtag=sys.argv[1]).count())",
                hashtag,
            )
            run["stored"] = int(stored.strip())


def health_instance(env: dict[str, str], folder: Path, web_port: int, *, enabled: bool):
    """The health instance of docs/deploy.rst beside the page server (or nothing)."""
    if not enabled:
        return contextlib.nullcontext(None)
    return processes.Gunicorn(
        {**env, "GUNICORN_BIND": f"127.0.0.1:{web_port}"},
        ["-c", "python:everhash.gunicorn_health_conf"],
        log=folder / "health.log",
        bind_variable="GUNICORN_HEALTH_BIND",
    )


async def measure_ingest(port: int, health_port: int, args: argparse.Namespace, env: dict, folder: Path) -> str:
    """The mix at --ingest clients alone, then with fetch_tweets ingesting at nice 0, then at nice 10."""
    mix = Mix(seed=21)
    phase_of = functools.partial(run_phase, port, health_port=health_port, timeout=args.timeout)
    rows = [
        f"\nThe mix at {args.ingest} clients while `fetch_tweets` stores {INGEST_PICTURES} photos into another "
        "album (bench/ingest.py's, from a loopback fake X API in a process of its own):\n",
        "| fetch_tweets | req/s | p50 ms | p99 ms | errors | /healthz p50 / p99 ms | fetch ran | pictures stored |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name, nice in (("not running", None), ("nice 0", 0), ("nice 10", 10)):
        probe = Phase()
        with (
            contextlib.nullcontext({}) if nice is None else ingesting(env, folder, hashtag=f"ingest{nice}", nice=nice)
        ) as run:
            phase = await phase_of(clients=args.ingest, seconds=args.seconds, mix=mix, probe=probe, interval=0.5)
        latencies, probes = phase.latencies(), probe.latencies()
        errors = sum(not r.ok for r in [*phase.results, *probe.results])
        fetched = f"{run['seconds']:.0f} s{' (stopped)' if run['running'] else ''}" if run else "-"
        rows.append(
            f"| {name} | {len(latencies) / phase.duration:,.1f} | {ms(latencies)} | {ms(latencies, 0.99)} | {errors} | "
            f"{ms(probes)} / {ms(probes, 0.99)} | {fetched} | {run.get('stored', '-')} |"
        )
        print(rows[-1], file=sys.stderr)
    return "\n".join(rows)


async def measure(port: int, health_port: int, args: argparse.Namespace, levels: list[int]) -> dict:
    mix = Mix(seed=20)
    # Warm-up: every kind once on each worker (templates, code), untimed.
    phase_of = functools.partial(run_phase, port, health_port=health_port, timeout=args.timeout)
    await phase_of(clients=4, seconds=5, mix=mix, probe=None, interval=1)
    rows = ["| clients | req/s | p50 ms | p99 ms | errors | /healthz p50 / p99 / max ms | ping req/s | mix / ping |"]
    rows.append("|---:|---:|---:|---:|---:|---|---:|---:|")
    kinds_rows = ["| clients | " + " | ".join(kind for kind, _, _ in MIX) + " |"]
    kinds_rows.append("|---:|" + "---:|" * len(MIX))
    total_failures = 0
    for clients in levels:
        mixes, pings, probe = [], [], Phase()
        for _ in range(args.rounds):
            ping = await phase_of(clients=clients, seconds=args.ping_seconds, mix=None, probe=None, interval=1)
            phase = await phase_of(
                clients=clients,
                seconds=args.seconds,
                mix=mix,
                probe=probe,
                interval=args.probe_interval,
            )
            pings.append(ping)
            mixes.append(phase)
        latencies = sorted(s for phase in mixes for s in phase.latencies())
        rps = len(latencies) / sum(phase.duration for phase in mixes)
        ping_rps = sum(len(p.results) for p in pings) / sum(p.duration for p in pings)
        probes = probe.latencies()
        errors: dict[str, int] = {}
        for phase in [*mixes, *pings, probe]:
            for r in phase.results:
                if not r.ok:
                    key = f"{r.kind}: {r.status or 'no answer'}"
                    errors[key] = errors.get(key, 0) + 1
        failures = sum(errors.values())
        total_failures += failures
        rows.append(
            f"| {clients} | {rps:,.1f} | {ms(latencies)} | {ms(latencies, 0.99)} | {failures}"
            f"{' (' + ', '.join(f'{k} x{v}' for k, v in errors.items()) + ')' if errors else ''} | "
            f"{ms(probes)} / {ms(probes, 0.99)} / {ms(probes[-1:]) if probes else '-'} ({len(probes)} probes) | "
            f"{ping_rps:,.1f} | {rps / ping_rps:.1%} |"
        )
        cells = []
        for kind, _, _ in MIX:
            values = sorted(s for phase in mixes for s in phase.latencies(kind))
            cells.append(f"{ms(values)} / {ms(values, 0.99)}")
        kinds_rows.append(f"| {clients} | " + " | ".join(cells) + " |")
        print(rows[-1], file=sys.stderr)
    return {
        "table": "\n".join(rows),
        "kinds": "\nEach kind's p50 / p99 ms:\n\n" + "\n".join(kinds_rows),
        "failures": total_failures,
    }


if __name__ == "__main__":
    raise SystemExit(main())
