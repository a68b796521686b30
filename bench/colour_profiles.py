"""What a colour profile costs ingest: the same photos opened and rendered with and without one.

    .venv/bin/python -m bench.colour_profiles            # markdown table on stdout (docs/benchmarks.md)
    .venv/bin/python -m bench.colour_profiles --rounds 9

A file that carries a profile other than sRGB (phones: Display P3; cameras: Adobe RGB) is converted to
sRGB when it is decoded (everhash.lib.images), which the 300 photos of bench/ingest.py never ask, as
none carries a profile. Here the bundled sample photos are scaled to 12 and 3 megapixels and written
as JPEG q90 twice, once with the Adobe RGB profile of tweets/sample_data/photos/rocket.jpg and once
without; `open_for_renditions` then `make_renditions` (what ingest runs on every new photo) is timed
in CPU seconds, the two alternating in each round. The ratio is per round, then the median.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

import django
from PIL import Image

from everhash.lib.images import make_renditions, open_for_renditions

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "everhash.settings")
django.setup()

from everhash.testing.builders import COLOUR_PHOTOS, SAMPLE_PHOTOS  # noqa: E402  (models need the setup)

SIZES = {"12 MP": (4000, 3000), "3 MP": (2000, 1500)}


def photos(size: tuple[int, int], profile: bytes) -> tuple[list[bytes], list[bytes]]:
    """The colour sample photos at ``size``, as JPEG q90 without and with ``profile``."""
    plain, tagged = [], []
    for name in COLOUR_PHOTOS:
        with Image.open(SAMPLE_PHOTOS / name) as image:
            pixels = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
        pixels.info.clear()
        for files, options in ((plain, {}), (tagged, {"icc_profile": profile})):
            out = io.BytesIO()
            pixels.save(out, "JPEG", quality=90, **options)
            files.append(out.getvalue())
    return plain, tagged


def cpu_seconds(files: list[bytes]) -> float:
    start = time.process_time()
    for data in files:
        make_renditions(open_for_renditions(data, max_pixels=50_000_000))
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with Image.open(SAMPLE_PHOTOS / "rocket.jpg") as image:
        profile = image.info["icc_profile"]
    print("| photos | without a profile: CPU ms per photo | with Adobe RGB | ratio (median of rounds) |")
    print("|---|---|---|---|")
    for label, size in SIZES.items():
        plain, tagged = photos(size, profile)
        cpu_seconds(plain[:1] + tagged[:1])  # warm up: libraries loaded, caches filled
        without, with_profile = [], []
        for _ in range(args.rounds):
            without.append(cpu_seconds(plain) / len(plain))
            with_profile.append(cpu_seconds(tagged) / len(tagged))
        ratio = statistics.median(b / a for a, b in zip(without, with_profile, strict=True))
        print(
            f"| {len(plain)} x {label} | {statistics.median(without) * 1000:.0f} |"
            f" {statistics.median(with_profile) * 1000:.0f} | {ratio:.2f} x |"
        )


if __name__ == "__main__":
    main()
