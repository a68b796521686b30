"""The cost of crash-safe local writes: pictures.storage.store_file against Django's in-place save.

    .venv/bin/python -m bench.storage_writes [--pictures 100] [--folder DIR]

Each picture's five real files (four renditions and the original, made from the
bundled sample photos) are written to fresh keys under DIR (a folder on the disk to measure;
default a temporary folder): once with FileSystemStorage.save as store_file did before issue 19
(chunks written in place), once with store_file (temporary name, fsync, rename, fsync of the
folder). The two alternate picture by picture, so both see the same disk state. Prints a
markdown table (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "everhash.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.core.files.storage import FileSystemStorage  # noqa: E402
from django.test import override_settings  # noqa: E402

from everhash.lib.images import make_renditions, open_verified  # noqa: E402
from everhash.testing.builders import COLOUR_PHOTOS, photo_bytes  # noqa: E402
from pictures.storage import store_file  # noqa: E402


def picture_files() -> list[list[bytes]]:
    files = []
    for name in COLOUR_PHOTOS:
        data = photo_bytes(name)
        verified = open_verified(data, max_pixels=settings.EVERHASH_MAX_IMAGE_PIXELS)
        files.append([jpeg for jpeg, _, _ in make_renditions(verified).values()] + [data])
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=100)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    photos = picture_files()
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        storages = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
        with override_settings(MEDIA_ROOT=folder, STORAGES=storages):
            in_place = FileSystemStorage(location=folder)
            timings: dict[str, list[float]] = {"in place (before)": [], "store_file (temp, fsync, rename)": []}
            for n in range(args.pictures):
                files = photos[n % len(photos)]
                for label in timings:
                    prefix = hashlib.sha256(f"{label}{n}".encode()).hexdigest()
                    started = time.perf_counter()
                    for i, data in enumerate(files):
                        key = f"renditions/{prefix[:2]}/{prefix}/{i}.jpg"
                        if label.startswith("in place"):
                            in_place.save(key, ContentFile(data))
                        else:
                            store_file(key, data)
                    timings[label].append((time.perf_counter() - started) * 1000)
    size = sum(len(d) for files in photos for d in files) / len(photos) / 1e6
    print(f"{args.pictures} pictures, 5 files and {size:.1f} MB each, in {args.folder or tempfile.gettempdir()}\n")
    print("| Writer | median ms a picture | p90 ms | total s |")
    print("| --- | --- | --- | --- |")
    for label, values in timings.items():
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"| {label} | {statistics.median(values):.1f} | {p90:.1f} | {sum(values) / 1000:.2f} |")


if __name__ == "__main__":
    main()
