"""Ingestion speed: `manage.py fetch_tweets` on 300 photos from the loopback fake X API, against the floor.

    .venv/bin/python -m bench.ingest                   # markdown report on stdout (docs/benchmarks.md)
    .venv/bin/python -m bench.ingest --rounds 5
    .venv/bin/python -m bench.ingest --profile         # also one run under cProfile: where the time goes
    .venv/bin/python -m bench.ingest --mixed           # the same pictures from X, Mastodon and Bluesky

The pictures: 300 distinct photos made from tweets/sample_data/photos/ (crops, mirror images,
rotations and filters: different pictures by the product's definition), from 0.3 to 12 megapixels
spread evenly on a log scale, two thirds JPEG (with sensor-like grain, one in ten with an EXIF
orientation) and one third PNG. They are generated once, checked to be distinct under
pictures/dedupe.py, and cached in .bench/ingest/ (gitignored), so reruns start at once.

The pipeline: a throwaway CA (trustme), FakeXAPI on 127.0.0.1 serving the 300 posts of one hashtag
and their images over HTTPS, a SQLite file migrated once and copied for each round, a media folder
per round, and the real command `manage.py fetch_tweets --album <tag> --max-pages 10` in a
subprocess configured through the documented EVERHASH_* variables with DEBUG off, as cron runs it,
so every step runs: search, download through the safe HTTP helper, sha256, verify and decode,
dedupe, renditions, storage, rows, milestone emails (to files). Its wall time (Python and Django
start-up included), CPU time and peak RSS (its own `ru_maxrss`, see LAUNCHER) are measured; each
round must store all 300 pictures with no duplicate and no rejection, or the benchmark fails.

The floor: the same files, decoded and turned into the same renditions, nothing else: for each file
`open_verified()` then `make_renditions()`, timed in a fresh single process, with the bytes read
from disk beforehand (no network, no database, no storage). Floor and pipeline run alternately,
`--rounds` times; the report gives each round and the medians. Ratio = pipeline pictures/s / floor
pictures/s, per round (also by CPU time, which other load on a shared machine disturbs less).
Targets (issue 3): ratio at least 60%, peak memory under 300 MB, dedupe under 5 ms per candidate
against 100,000 stored signatures (measured here too, with the helpers of bench/dedupe_speed.py).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import platform
import pstats
import random
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from everhash.lib.images import make_renditions, open_for_renditions, open_verified
from everhash.testing.processes import LoopbackCA
from pictures.dedupe import Signature, SignatureIndex, compute_signature

ROOT = Path(__file__).resolve().parent.parent

PHOTOS_DIR = ROOT / "tweets" / "sample_data" / "photos"
PHOTOS = sorted(path.name for path in PHOTOS_DIR.iterdir() if path.suffix in (".jpg", ".png"))
# Bump when the pictures change: the cache folder is named after it.
GENERATOR_VERSION = 2
CACHE_DIR = ROOT / ".bench" / "ingest"
HASHTAG = "everhashbench"
BEARER = "bench-bearer-token"
MIN_MEGAPIXELS, MAX_MEGAPIXELS = 0.3, 12.0
# The app's defaults, passed to the command explicitly so that the floor checks the same limit.
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 20 * 1024 * 1024
JPEG_GRAIN = 4.0  # standard deviation, in grey levels, of the grain added to JPEGs
RUN_TIMEOUT = 600  # seconds: a stuck round is killed, and the benchmark fails
TARGET_RATIO, TARGET_RSS_MB, TARGET_DEDUPE_MS = 0.60, 300, 5.0


# --- The pictures ----------------------------------------------------------------------------


def _sepia(image: Image.Image) -> Image.Image:
    return ImageOps.colorize(ImageOps.grayscale(image), black="#2e1f10", white="#fff4dc")


FILTERS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "none": lambda image: image,
    "greyscale": lambda image: ImageOps.grayscale(image).convert("RGB"),
    "sepia": _sepia,
    "brighter": lambda image: ImageEnhance.Brightness(image).enhance(1.3),
    "contrast": lambda image: ImageEnhance.Contrast(image).enhance(1.4),
    "invert": ImageOps.invert,
    "sharpen": lambda image: image.filter(ImageFilter.UnsharpMask(radius=3, percent=250, threshold=0)),
    "blur": lambda image: image.filter(ImageFilter.GaussianBlur(radius=3)),
}
ORIENTATIONS: dict[str, Image.Transpose | None] = {
    "upright": None,
    "mirror": Image.Transpose.FLIP_LEFT_RIGHT,
    "rotate-90": Image.Transpose.ROTATE_90,
    "rotate-180": Image.Transpose.ROTATE_180,
    "rotate-270": Image.Transpose.ROTATE_270,
    "transpose": Image.Transpose.TRANSPOSE,
    "transverse": Image.Transpose.TRANSVERSE,
    "flip": Image.Transpose.FLIP_TOP_BOTTOM,
}


@dataclass(frozen=True)
class Recipe:
    """How one benchmark picture is made: candidate ``k`` (its content) at slot ``slot``'s size and format."""

    k: int
    slot: int
    photo: str
    crop: tuple[float, float, float, float]  # left, top, right, bottom as fractions of the photo
    orientation: str
    filter: str
    megapixels: float
    format: str  # JPEG or PNG
    quality: int
    exif_orientation: int  # 1 = none

    @property
    def name(self) -> str:
        return f"{self.slot:03d}-{self.k:04d}.{'jpg' if self.format == 'JPEG' else 'png'}"


def slot_sizes(count: int) -> list[float]:
    """Megapixels per slot: from MIN to MAX evenly on a log scale, in a fixed shuffled order."""
    steps = [i / max(count - 1, 1) for i in range(count)]
    random.Random(2026).shuffle(steps)
    return [MIN_MEGAPIXELS * (MAX_MEGAPIXELS / MIN_MEGAPIXELS) ** step for step in steps]


def recipe(k: int, slot: int, megapixels: float) -> Recipe:
    rng = random.Random(f"everhash-bench-{k}")
    width, height = rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95)
    left, top = rng.uniform(0, 1 - width), rng.uniform(0, 1 - height)
    is_png = slot % 3 == 2
    return Recipe(
        k=k,
        slot=slot,
        photo=PHOTOS[k % len(PHOTOS)],
        crop=(left, top, left + width, top + height),
        orientation=rng.choice(list(ORIENTATIONS)),
        filter=rng.choice(list(FILTERS)),
        megapixels=megapixels,
        format="PNG" if is_png else "JPEG",
        quality=85 + (slot * 7) % 11,
        exif_orientation=6 if not is_png and slot % 10 == 3 else 1,
    )


def render_picture(plan: Recipe) -> bytes:
    """The file of one recipe, the same bytes on every machine with the same Pillow and numpy."""
    with Image.open(PHOTOS_DIR / plan.photo) as source:
        image = source.convert("RGB")
    left, top, right, bottom = plan.crop
    image = image.crop(
        (round(left * image.width), round(top * image.height), round(right * image.width), round(bottom * image.height))
    )
    transpose = ORIENTATIONS[plan.orientation]
    if transpose is not None:
        image = image.transpose(transpose)
    image = FILTERS[plan.filter](image)
    scale = math.sqrt(plan.megapixels * 1e6 / (image.width * image.height))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if plan.format == "JPEG":
        # Grain, so that files are as busy as photos from a camera, not smooth upscales.
        noise = np.random.default_rng(plan.k).standard_normal((size[1], size[0]), dtype=np.float32) * JPEG_GRAIN
        pixels = np.asarray(image, np.float32) + noise[..., None]
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        exif = Image.Exif()
        if plan.exif_orientation != 1:
            exif[0x0112] = plan.exif_orientation
        image.save(out, "JPEG", quality=plan.quality, exif=exif.tobytes())
    else:
        image.save(out, "PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Candidate:
    """A rendered recipe, checked the way the app will see it."""

    plan: Recipe
    path: Path
    size: int
    sha256: str
    width: int  # after EXIF orientation, as stored
    height: int
    signature: Signature
    problem: str  # why the app could not take it ("" when it can)


def build_candidate(args: tuple[Recipe, Path]) -> Candidate:
    """Write a recipe's file, then decode it, sign it and try its renditions, as ingest_photo would."""
    plan, folder = args
    data = render_picture(plan)
    path = folder / plan.name
    path.write_bytes(data)
    verified = open_verified(data, max_pixels=MAX_IMAGE_PIXELS)
    problem = f"{len(data)} bytes, over the download cap" if len(data) > MAX_IMAGE_BYTES else ""
    try:
        make_renditions(verified)
    except Exception as exc:
        problem = f"make_renditions raised {type(exc).__name__}: {exc}"
    return Candidate(
        plan=plan,
        path=path,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        width=verified.width,
        height=verified.height,
        signature=compute_signature(verified.image),
        problem=problem,
    )


def generate(count: int, folder: Path, log: Callable[[str], None]) -> dict:
    """Make ``count`` pictures, all distinct under the dedupe and all accepted by the app.

    Returns the manifest: the pictures, and the candidates refused with the reason.
    """
    folder.mkdir(parents=True, exist_ok=True)
    sizes = slot_sizes(count)
    index = SignatureIndex()
    pictures: list[dict] = []
    refused: list[dict] = []

    def accept(candidate: Candidate) -> bool:
        plan = candidate.plan
        problem = candidate.problem
        # Distinct even for the signature filter alone (stricter than ingest, which then verifies).
        if not problem and (near := index.candidates(candidate.signature, limit=1)):
            problem = f"a duplicate of the picture of slot {near[0][0]}"
        if problem:
            candidate.path.unlink()
            refused.append(
                {"k": plan.k, "slot": plan.slot, "size": [candidate.width, candidate.height], "problem": problem}
            )
            return False
        index.add(plan.slot, candidate.signature)
        pictures.append(
            {
                "file": candidate.path.name,
                "format": plan.format,
                "width": candidate.width,
                "height": candidate.height,
                "bytes": candidate.size,
                "sha256": candidate.sha256,
                "recipe": asdict(plan),
            }
        )
        return True

    # Candidate k fills slot k; a slot whose candidate is refused gets the next unused candidates
    # (other content, the same size and format) until one is accepted.
    missing: list[int] = []
    with ProcessPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        jobs = ((recipe(slot, slot, sizes[slot]), folder) for slot in range(count))
        for done, candidate in enumerate(pool.map(build_candidate, jobs, chunksize=4), start=1):
            if not accept(candidate):
                missing.append(candidate.plan.slot)
            if done % 50 == 0:
                log(f"generated {done}/{count} pictures")
    k = count
    for slot in missing:
        while not accept(build_candidate((recipe(k, slot, sizes[slot]), folder))):
            k += 1
            if k > 20 * count:
                raise RuntimeError("cannot find enough distinct pictures; change the recipes")
        k += 1
    for refusal in refused:
        log(f"refused candidate {refusal['k']} ({refusal['size'][0]}x{refusal['size'][1]}): {refusal['problem']}")
    log(f"{count} distinct pictures; {len(refused)} candidate(s) refused")
    pictures.sort(key=lambda entry: entry["recipe"]["slot"])
    return {"version": GENERATOR_VERSION, "pictures": pictures, "refused": refused}


def load_pictures(count: int, log: Callable[[str], None]) -> tuple[Path, dict]:
    """The cached pictures and their manifest, generated first if the cache is missing or damaged."""
    folder = CACHE_DIR / f"v{GENERATOR_VERSION}-{count}"
    path = folder / "manifest.json"
    if path.exists():
        manifest = json.loads(path.read_text())
        intact = len(manifest["pictures"]) == count and all(
            (folder / e["file"]).is_file()
            and hashlib.sha256((folder / e["file"]).read_bytes()).hexdigest() == e["sha256"]
            for e in manifest["pictures"]
        )
        if intact:
            return folder, manifest
        log(f"{folder} is incomplete or damaged; generating again")
    shutil.rmtree(folder, ignore_errors=True)
    log(f"generating {count} pictures into {folder} (once; later runs reuse them)")
    manifest = generate(count, folder, log)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(manifest, indent=1))
    partial.replace(path)
    return folder, manifest


# --- Measuring processes -----------------------------------------------------------------------


# A child's ru_maxrss is not its own peak alone: Linux starts it from the RSS high-water mark of the
# process that spawned it (exec keeps the larger of the two), and this process holds every picture
# for the fake API (about 350 MB), so wait4() here would report at least that for any child. This
# small launcher spawns the measured command instead and reports the command's own figures.
LAUNCHER = """
import json, os, subprocess, sys, threading, time
result, timeout, command = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
started = time.perf_counter()
process = subprocess.Popen(command)
watchdog = threading.Timer(timeout, process.kill)
watchdog.start()
_, status, usage = os.wait4(process.pid, 0)
seconds = time.perf_counter() - started
process.returncode = os.waitstatus_to_exitcode(status)
watchdog.cancel()
with open(result, "w") as out:
    json.dump({"seconds": seconds, "maxrss_kb": usage.ru_maxrss,
               "cpu_seconds": usage.ru_utime + usage.ru_stime, "returncode": process.returncode}, out)
"""


@dataclass
class Measured:
    seconds: float  # wall time of the process, start-up included
    cpu_seconds: float  # its user + system time
    peak_rss_mb: float  # its own ru_maxrss, in MB of 10**6 bytes
    output: str


def run_measured(command: list[str], *, env: dict[str, str], output: Path, timeout: float = RUN_TIMEOUT) -> Measured:
    """Run a command through LAUNCHER and measure it alone: wall time, CPU time, peak RSS."""
    result = output.with_suffix(".measure.json")
    launcher = [sys.executable, "-c", LAUNCHER, str(result), str(timeout), *command]
    with output.open("wb") as out:
        # A session of its own, so that an interrupted benchmark ends the launcher and the command together.
        process = subprocess.Popen(
            launcher, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            process.wait(timeout + 30)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    text = output.read_text(errors="replace")
    measure = json.loads(result.read_text()) if result.exists() else {"returncode": process.returncode}
    if process.returncode != 0 or measure["returncode"] != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {measure['returncode']}:\n{text[-3000:]}")
    return Measured(
        seconds=measure["seconds"],
        cpu_seconds=measure["cpu_seconds"],
        peak_rss_mb=measure["maxrss_kb"] * 1024 / 1e6,
        output=text,
    )


def libvips_renditions(data: bytes) -> None:
    """The libvips floor of issue 18: shrink-on-load `thumbnail_buffer` to 2048, the smaller sizes from
    that, JPEG Q85, no metadata (no checks of our own, no Pillow)."""
    import pyvips

    large = pyvips.Image.thumbnail_buffer(data, 2048, height=2048, size="down").copy_memory()
    large.jpegsave_buffer(Q=85, keep="none")
    large.thumbnail_image(1024, height=1024, size="down").jpegsave_buffer(Q=85, keep="none")
    for side in (400, 200):
        large.thumbnail_image(side, height=side, crop="centre").jpegsave_buffer(Q=85, keep="none")


# The floors: what turning files into renditions costs with nothing else around it.
FLOORS: dict[str, Callable[[bytes], object]] = {
    # Today's (before issue 18): Pillow decodes the whole picture, then makes the renditions.
    "pillow": lambda data: make_renditions(open_verified(data, max_pixels=MAX_IMAGE_PIXELS)),
    # What ingest runs now: libvips decodes straight to the largest rendition's size.
    "app": lambda data: make_renditions(open_for_renditions(data, max_pixels=MAX_IMAGE_PIXELS)),
    "libvips": libvips_renditions,
}


def floor_worker(folder: Path, kind: str) -> None:
    """A floor, in a fresh process: decode and make the renditions of every file, nothing else."""
    entries = json.loads((folder / "manifest.json").read_text())["pictures"]
    wall = cpu = 0.0
    make = FLOORS[kind]
    for entry in entries:
        data = (folder / entry["file"]).read_bytes()  # not timed
        started, started_cpu = time.perf_counter(), time.process_time()
        make(data)
        wall += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
        del data
    print(json.dumps({"seconds": wall, "cpu_seconds": cpu, "pictures": len(entries)}))


def run_floor(folder: Path, work: Path, kind: str = "app") -> dict:
    measured = run_measured(
        [sys.executable, "-m", "bench.ingest", "--floor-worker", str(folder), "--floor-kind", kind],
        env=dict(os.environ),
        output=work / f"floor-{kind}.txt",
    )
    result = json.loads(measured.output.strip().splitlines()[-1])
    return {
        "seconds": result["seconds"],
        "cpu_seconds": result["cpu_seconds"],
        "rate": result["pictures"] / result["seconds"],
        "peak_rss_mb": measured.peak_rss_mb,
    }


# --- The pipeline ------------------------------------------------------------------------------

SETUP_ALBUM = f"""
import django; django.setup()
from albums.models import Album
from users.models import User
owner = User.objects.create_user("bench@example.com", None, name="Bench Owner")
Album.objects.create(owner=owner, hashtag={HASHTAG!r}, title="Benchmark")
"""


@contextlib.contextmanager
def fake_sources(work: Path, folder: Path, entries: list[dict]) -> Iterator[dict[str, str]]:
    """The pictures spread over every source: X, a Mastodon instance and Bluesky, one in three
    each, all loopback HTTPS fakes sharing one CA; yields the EVERHASH_* variables that select them."""
    from everhash.testing.fake_bluesky import FakeBluesky
    from everhash.testing.fake_mastodon import FakeMastodon, Fediverse

    x_entries = entries[0::3]
    with fake_x_api(work, folder, x_entries) as (api_url, ca_path):
        (work / "social").mkdir(exist_ok=True)
        ca = LoopbackCA(work / "social")
        with FakeMastodon(ca.server_context(), Fediverse()) as mastodon, FakeBluesky(ca.server_context()) as bluesky:
            for i, entry in enumerate(entries):
                image = ((folder / entry["file"]).read_bytes(), "", entry["width"], entry["height"])
                if i % 3 == 1:
                    mastodon.post(user=f"photographer{i % 37}", tag=HASHTAG, images=[image], favourites=i % 50)
                elif i % 3 == 2:
                    bluesky.add_post(
                        author=f"photographer{i % 37}.bsky.test", tag=HASHTAG, images=[image], likes=i % 50
                    )
            bundle = work / "cas.pem"
            bundle.write_bytes(Path(ca_path).read_bytes() + Path(ca.ca_path).read_bytes())
            yield {
                "EVERHASH_X_API_URL": api_url,
                "EVERHASH_CA_BUNDLE": str(bundle),
                "EVERHASH_MASTODON_INSTANCES": mastodon.url,
                "EVERHASH_BLUESKY_API_URL": bluesky.url,
                "EVERHASH_BLUESKY_HANDLE": bluesky.handle,
                "EVERHASH_BLUESKY_APP_PASSWORD": bluesky.password,
            }


@contextlib.contextmanager
def fake_x_api(
    work: Path, folder: Path, entries: list[dict], tags: Sequence[str] = (HASHTAG,), rate_limit: int = 450
) -> Iterator[tuple[str, str]]:
    """FakeXAPI on 127.0.0.1 with a throwaway CA, serving one post per picture; yields (url, CA path).

    Picture i is posted under tags[i % len(tags)] (bench/production.py spreads them over albums);
    `rate_limit` is the number of search requests the fake answers before its 429s.
    """
    from everhash.testing.fake_x_api import FakeXAPI

    ca = LoopbackCA(work)
    with FakeXAPI(ca.server_context(), bearer_token=BEARER, rate_limit=rate_limit) as fake:
        for i, entry in enumerate(entries):
            content_type = "image/png" if entry["format"] == "PNG" else "image/jpeg"
            url = fake.add_image(entry["file"], (folder / entry["file"]).read_bytes(), content_type)
            author = (f"photographer{i % 37}", f"Photographer {i % 37}")
            photo = (f"3_bench{i:04d}", url, entry["width"], entry["height"], "")
            fake.add_post(tag=tags[i % len(tags)], author=author, likes=i % 50, photos=[photo])
        yield fake.url, ca.ca_path


def pipeline_environment(work: Path, api_url: str, ca_path: str) -> dict[str, str]:
    """The variables an operator would set, on a clean copy of this environment (no stray S3, MariaDB...)."""
    stray = ("EVERHASH_", "DB_", "EMAIL_", "AWS_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(stray)}
    (work / "tmp").mkdir(exist_ok=True)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "everhash.settings",
            # As cron runs it in production: DEBUG off (with DEBUG on, Django also keeps every SQL query).
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "TMPDIR": str(work / "tmp"),  # combined_ca_bundle() writes there: cleaned up with the rest
            "EVERHASH_X_API_URL": api_url,
            "EVERHASH_X_BEARER_TOKEN": BEARER,
            "EVERHASH_MASTODON_INSTANCES": "",  # nothing leaves the machine
            "EVERHASH_CA_BUNDLE": ca_path,
            "EVERHASH_MEDIA_HOSTS": "127.0.0.1",
            "EVERHASH_ALLOW_PRIVATE_ADDRESSES": "127.0.0.1",
            "EVERHASH_MAX_IMAGE_PIXELS": str(MAX_IMAGE_PIXELS),
            "EVERHASH_MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES),
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        }
    )
    return env


def database_environment(env: dict[str, str], folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        **env,
        "EVERHASH_VAR_DIR": str(folder),
        "EVERHASH_SQLITE_PATH": str(folder / "db.sqlite3"),
        "MEDIA_ROOT": str(folder / "media"),
        "EMAIL_FILE_PATH": str(folder / "mail"),
    }


def prepare_template(env: dict[str, str], work: Path, code: Path = ROOT) -> Path:
    """A SQLite database migrated by the code in ``code`` (a baseline has the schema of its own time),
    with the owner and the album, copied for each round of that code."""
    template_env = {**database_environment(env, work / f"template-{code.name}"), "PYTHONPATH": str(code)}
    for args in (["manage.py", "migrate", "--noinput", "-v0"], ["-c", SETUP_ALBUM]):
        subprocess.run(
            [sys.executable, *args], cwd=code, env=template_env, check=True, capture_output=True, timeout=300
        )
    return Path(template_env["EVERHASH_SQLITE_PATH"])


def copy_database(source: Path, target: Path) -> None:
    with contextlib.closing(sqlite3.connect(source)) as src, contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def export_baseline(revision: str) -> Path:
    """A plain copy of the code at ``revision`` (``git archive``, no checkout), to run its fetch_tweets."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    folder = CACHE_DIR / f"baseline-{commit[:12]}"
    if not (folder / "manage.py").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def fetch_command(profile: Path | None = None, code: Path = ROOT) -> list[str]:
    command = [str(code / "manage.py"), "fetch_tweets", "--album", HASHTAG, "--max-pages", "10"]
    if profile is not None:
        return [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    return [sys.executable, *command]


def run_pipeline(
    env: dict[str, str], template: Path, folder: Path, expected: int, profile: Path | None = None, code: Path = ROOT
) -> dict:
    """One fetch_tweets run (of the code in ``code``) on a fresh copy of the database and an empty media folder."""
    round_env = database_environment(env, folder)
    database = Path(round_env["EVERHASH_SQLITE_PATH"])
    copy_database(template, database)
    round_env["PYTHONPATH"] = str(code)
    measured = run_measured(fetch_command(profile, code), env=round_env, output=folder / "fetch_tweets.txt")
    with contextlib.closing(sqlite3.connect(database)) as db:
        # One FetchRun per source the album was fetched from (one with X alone, three with --mixed).
        started, finished, added, duplicates, rejected, error = db.execute(
            "SELECT MIN(started), MAX(finished), SUM(pictures_added), SUM(duplicates), SUM(rejected),"
            " GROUP_CONCAT(error, ' ') FROM tweets_fetchrun"
        ).fetchone()
        stored = db.execute("SELECT COUNT(*), COUNT(DISTINCT content_hash) FROM pictures_picture").fetchone()
    originals = sum(1 for path in (folder / "media" / "originals").rglob("*") if path.is_file())
    if (added, duplicates, rejected, *stored, originals) != (expected, 0, 0, expected, expected, expected):
        raise RuntimeError(
            f"expected {expected} pictures stored, no duplicate, no rejection; got {added} added,"
            f" {duplicates} duplicates, {rejected} rejected, {stored[0]} rows, {originals} originals."
            f" {error}\n{measured.output[-3000:]}"
        )
    in_fetch = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    shutil.rmtree(folder)  # about a gigabyte of media per round
    return {
        "seconds": measured.seconds,
        "cpu_seconds": measured.cpu_seconds,
        "rate": expected / measured.seconds,
        "fetch_album_seconds": in_fetch,
        "peak_rss_mb": measured.peak_rss_mb,
    }


# --- Dedupe ------------------------------------------------------------------------------------


def dedupe_figures(stored: int = 100_000, candidates: int = 200) -> list[tuple[str, np.ndarray, str]]:
    """find_duplicate against ``stored`` signatures: the usual case and a stored duplicate."""
    from bench import dedupe_speed

    rng = np.random.default_rng(2024)
    vectors, hashes = dedupe_speed.random_arrays(stored, rng)
    index = SignatureIndex.from_rows(
        (i, v.tobytes(), h.tobytes().hex()) for i, (v, h) in enumerate(zip(vectors, hashes, strict=True))
    )
    unrelated = iter(dedupe_speed.signatures(*dedupe_speed.random_arrays(candidates, rng)))
    usual = dedupe_speed.timings(lambda: index.candidates(next(unrelated)), candidates)
    picks = rng.choice(stored, candidates, replace=False)
    noisy = vectors[picks].copy()
    noisy[:, : dedupe_speed.COLOURS] += rng.normal(0, 0.002, size=(candidates, dedupe_speed.COLOURS))
    near = iter(dedupe_speed.signatures(noisy.astype(np.float32), dedupe_speed.flip_bits(hashes[picks], 6, rng)))
    found: list[list] = []
    copies = dedupe_speed.timings(lambda: found.append(index.candidates(next(near))), candidates)
    hits = sum(bool(answer) and answer[0][0] == int(pick) for answer, pick in zip(found, picks, strict=True))
    return [
        ("nothing similar stored (the usual case)", usual, ""),
        ("a re-encoded copy of a stored picture", copies, f"{hits}/{candidates} found"),
    ]


# --- Profile -----------------------------------------------------------------------------------

# (stage, file suffix, function): cumulative times read from the profile.
STAGES = [
    ("the whole command", "django/core/management/__init__.py", "execute_from_command_line"),
    ("Django start-up", "django/__init__.py", "setup"),
    ("fetch_album", "tweets/services.py", "fetch_album"),
    ("search pages (twython)", "tweets/x_api.py", "search"),
    ("download (safehttp)", "everhash/lib/safehttp.py", "fetch"),
    ("ingest_photo", "pictures/services.py", "ingest_photo"),
    ("  sha256", "~", "<built-in method _hashlib.openssl_sha256>"),
    ("  verify and decode", "everhash/lib/images.py", "open_for_renditions"),
    ("  dedupe signature", "pictures/dedupe.py", "compute_signature"),
    ("  dedupe search", "pictures/dedupe.py", "find_duplicate"),
    ("  renditions", "everhash/lib/images.py", "make_renditions"),
    ("    resize", "everhash/lib/images.py", "_render_from"),
    ("    JPEG encode", "everhash/lib/images.py", "encode_jpeg"),
    ("  storage", "pictures/services.py", "store_file"),
    ("milestones and emails", "albums/services.py", "update_milestones"),
]


def profile_summary(path: Path, stages: list[tuple[str, str, str]] = STAGES) -> list[str]:
    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, _, ct, _) in raw.values())
    lines = ["| stage | function | calls | cumulative s | share |", "|---|---|---|---|---|"]
    for label, suffix, name in stages:
        found = [
            (nc, ct) for (file, _, func), (_, nc, _, ct, _) in raw.items() if func == name and file.endswith(suffix)
        ]
        if found:
            calls, seconds = sum(f[0] for f in found), sum(f[1] for f in found)
            lines.append(f"| {label} | `{name}` | {calls} | {seconds:.2f} | {seconds / total:.0%} |")
    lines += ["", "Top functions by own time:", "", "| function | calls | own s | share |", "|---|---|---|---|"]
    ranked = sorted(raw.items(), key=lambda item: -item[1][2])[:15]
    for (file, line, func), (_, nc, tt, _, _) in ranked:
        where = func if file == "~" else f"{func} ({Path(file).name}:{line})"
        lines.append(f"| `{where}` | {nc} | {tt:.2f} | {tt / total:.0%} |")
    return lines


# --- Report ------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import django
    import PIL

    return (
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs (`nproc`), {cpu}; Python"
        f" {platform.python_version()}, Django {django.__version__}, Pillow {PIL.__version__},"
        f" numpy {np.__version__}, SQLite {sqlite3.sqlite_version}"
    )


def describe(entries: list[dict]) -> str:
    megapixels = sorted(e["width"] * e["height"] / 1e6 for e in entries)
    pngs = sum(e["format"] == "PNG" for e in entries)
    size = sum(e["bytes"] for e in entries) / 1e6
    return (
        f"{len(entries)} distinct pictures ({len(entries) - pngs} JPEG, {pngs} PNG), {megapixels[0]:.2f} to"
        f" {megapixels[-1]:.2f} megapixels (median {statistics.median(megapixels):.2f},"
        f" {sum(megapixels):.0f} in all), {size:.0f} MB of files."
    )


def refusals(manifest: dict) -> str:
    """The candidates refused while generating, grouped by reason (app failures first)."""
    reasons: dict[str, list[str]] = {}
    for refusal in manifest["refused"]:
        reason = refusal["problem"]
        if reason.startswith("a duplicate"):
            reason = "a duplicate of an earlier picture"
        reasons.setdefault(reason, []).append("x".join(map(str, refusal["size"])))
    if not reasons:
        return "No candidate was refused while generating them."
    parts = [f"{len(sizes)} because {reason} ({', '.join(sizes)})" for reason, sizes in sorted(reasons.items())]
    return f"Candidates refused while generating them (replaced by others): {'; '.join(parts)}."


def report(manifest: dict, rounds: list[dict], dedupe: list, started: float, args) -> str:
    entries = manifest["pictures"]
    baseline = bool(args.baseline)
    out = [f"Pictures: {describe(entries)} {refusals(manifest)}", ""]
    runs = [("floor: Pillow (before issue 18)", "floor-pillow"), ("floor: as ingest now", "floor-app")]
    runs += [("floor: libvips alone", "floor-libvips")]
    runs += [(f"fetch_tweets at {args.baseline}", "baseline")] if baseline else []
    runs += [("fetch_tweets (this code)", "pipeline")]
    out += ["| run | " + " | ".join(f"round {n}" for n in range(1, len(rounds) + 1)) + " | median s | median CPU s"]
    out[-1] += " | pictures/s (median) | peak RSS MB (max) |"
    out.append("|---" * (len(rounds) + 5) + "|")
    medians: dict[str, dict] = {}
    for label, key in runs:
        seconds = [r[key]["seconds"] for r in rounds]
        medians[key] = {
            "seconds": statistics.median(seconds),
            "cpu": statistics.median(r[key]["cpu_seconds"] for r in rounds),
            "rate": statistics.median(r[key]["rate"] for r in rounds),
            "rss": max(r[key]["peak_rss_mb"] for r in rounds),
        }
        m = medians[key]
        out.append(
            f"| {label} | "
            + " | ".join(f"{v:.1f}" for v in seconds)
            + f" | {m['seconds']:.1f} | {m['cpu']:.1f} | {m['rate']:.2f} | {m['rss']:.0f} |"
        )

    def per_round(top: str, bottom: str) -> float:
        return statistics.median(r[top]["rate"] / r[bottom]["rate"] for r in rounds)

    def per_round_cpu(top: str, bottom: str) -> float:
        return statistics.median(r[bottom]["cpu_seconds"] / r[top]["cpu_seconds"] for r in rounds)

    out += ["", "| ratio (median of the per-round ratios) | wall time | CPU time | target |", "|---|---|---|---|"]
    if baseline:
        out.append(
            f"| fetch_tweets now / fetch_tweets at {args.baseline} (pictures per second) |"
            f" {per_round('pipeline', 'baseline'):.2f} x | {per_round_cpu('pipeline', 'baseline'):.2f} x | 1.4 x |"
        )
    out.append(
        f"| fetch_tweets now / the libvips floor | {per_round('pipeline', 'floor-libvips'):.0%}"
        f" | {per_round_cpu('pipeline', 'floor-libvips'):.0%} | |"
    )
    out.append(
        f"| fetch_tweets now / ingest's own floor | {per_round('pipeline', 'floor-app'):.0%}"
        f" | {per_round_cpu('pipeline', 'floor-app'):.0%} | at least 60% (issue 3) |"
    )
    out.append(
        f"| ingest's floor / Pillow floor | {per_round('floor-app', 'floor-pillow'):.2f} x"
        f" | {per_round_cpu('floor-app', 'floor-pillow'):.2f} x | |"
    )
    out.append(
        f"| libvips floor / Pillow floor | {per_round('floor-libvips', 'floor-pillow'):.2f} x"
        f" | {per_round_cpu('floor-libvips', 'floor-pillow'):.2f} x | |"
    )
    out += ["", "Dedupe, the signature filter (`SignatureIndex.candidates`) against 100,000 stored signatures:", ""]
    out += ["| situation | median ms | p99 ms | max ms | candidates | note |", "|---|---|---|---|---|---|"]
    for label, ms, note in dedupe:
        out.append(
            f"| {label} | {np.median(ms):.3f} | {np.percentile(ms, 99):.3f} | {ms.max():.3f} | {len(ms)} | {note} |"
        )
    out += [
        "",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine()}. Load average"
        f" {os.getloadavg()[0]:.2f} at the end. {args.rounds} rounds, {time.monotonic() - started:.0f} s in all.",
    ]
    return "\n".join(out)


def memory_pictures(log: Callable[[str], None], *, colour_profile: bool = False) -> tuple[Path, dict]:
    """Two pictures at the 40 MP limit (a JPEG with grain and a PNG), for the peak-memory run; with
    ``colour_profile``, both carry rocket.jpg's Adobe RGB profile (converted to sRGB on decoding)."""
    folder = CACHE_DIR / f"v{GENERATOR_VERSION}-memory{'-adobe-rgb' if colour_profile else ''}"
    path = folder / "manifest.json"
    if path.exists():
        return folder, json.loads(path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    log("making two 40-megapixel pictures")
    entries = []
    for k, fmt in ((0, "JPEG"), (1, "PNG")):
        plan = Recipe(k, k, PHOTOS[k], (0.05, 0.05, 0.95, 0.95), "upright", "none", 39.9, fmt, 90, 1)
        data = render_picture(plan)
        if colour_profile:
            with Image.open(PHOTOS_DIR / "rocket.jpg") as camera, Image.open(io.BytesIO(data)) as image:
                out = io.BytesIO()
                image.save(
                    out, fmt, icc_profile=camera.info["icc_profile"], **({"quality": 90} if fmt == "JPEG" else {})
                )
                data = out.getvalue()
        (folder / plan.name).write_bytes(data)
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
        entries.append(
            {
                "file": plan.name,
                "format": fmt,
                "width": width,
                "height": height,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    manifest = {"version": GENERATOR_VERSION, "pictures": entries, "refused": []}
    path.write_text(json.dumps(manifest, indent=1))
    return folder, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="pictures (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="floor and pipeline runs, alternately (default 3)")
    parser.add_argument("--baseline", help="also run fetch_tweets of this git revision, alternately (e.g. main)")
    parser.add_argument("--memory", action="store_true", help="peak memory of fetch_tweets on two 40 MP pictures")
    parser.add_argument("--colour-profile", action="store_true", help="with --memory: both carry an Adobe RGB profile")
    parser.add_argument("--profile", action="store_true", help="also run the pipeline once under cProfile")
    parser.add_argument("--mixed", action="store_true", help="a third of the pictures each from X, Mastodon, Bluesky")
    parser.add_argument("--floor-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--floor-kind", default="app", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_worker:
        floor_worker(args.floor_worker, args.floor_kind)
        return

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds: the round's processes, the server and the temp folder go

    signal.signal(signal.SIGTERM, terminate)
    started = time.monotonic()
    if args.memory:
        folder, manifest = memory_pictures(log, colour_profile=args.colour_profile)
    else:
        folder, manifest = load_pictures(args.count, log)
    entries = manifest["pictures"]
    log(describe(entries))
    baseline = export_baseline(args.baseline) if args.baseline else None
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="everhash-bench-ingest-") as tmp:
        work = Path(tmp)
        feeds = fake_sources(work, folder, entries) if args.mixed else fake_x_api(work, folder, entries)
        with feeds as feed:
            if args.mixed:
                env = {**pipeline_environment(work, feed["EVERHASH_X_API_URL"], feed["EVERHASH_CA_BUNDLE"]), **feed}
            else:
                env = pipeline_environment(work, *feed)
            templates = {code: prepare_template(env, work, code) for code in ([baseline] if baseline else []) + [ROOT]}
            log("database migrated; sources: " + ("X, Mastodon and Bluesky fakes" if args.mixed else "fake X API"))
            for n in range(1, args.rounds + 1):
                measured: dict[str, dict] = {}
                for kind in ("pillow", "app", "libvips"):
                    measured[f"floor-{kind}"] = floor = run_floor(folder, work, kind)
                    log(f"round {n}: floor {kind} {floor['seconds']:.1f} s, peak RSS {floor['peak_rss_mb']:.0f} MB")
                runs = [("baseline", baseline)] if baseline else []
                runs += [("pipeline", ROOT)]
                if n % 2 == 0:
                    runs.reverse()  # alternate which pipeline goes first
                for key, code in runs:
                    measured[key] = pipe = run_pipeline(
                        env, templates[code], work / f"round-{n}-{key}", len(entries), code=code
                    )
                    log(
                        f"round {n}: {key} {pipe['seconds']:.1f} s ({pipe['rate']:.2f} pictures/s),"
                        f" peak RSS {pipe['peak_rss_mb']:.0f} MB"
                    )
                rounds.append(measured)
            profile_lines: list[str] = []
            if args.profile:
                profile = work / "fetch_tweets.prof"
                pipe = run_pipeline(env, templates[ROOT], work / "profiled", len(entries), profile=profile)
                log(f"profiled pipeline: {pipe['seconds']:.1f} s")
                profile_lines = profile_summary(profile)
    dedupe: list = []
    if not args.memory:
        log("measuring dedupe against 100,000 signatures")
        dedupe = dedupe_figures()
    print(report(manifest, rounds, dedupe, started, args))
    if profile_lines:
        print("\nProfile of one more pipeline run (cProfile, which slows Python-heavy code down):\n")
        print("\n".join(profile_lines))


if __name__ == "__main__":
    main()
