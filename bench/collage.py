"""How long a 16-picture collage takes to build, against decoding its 16 renditions alone.

    .venv/bin/python -m bench.collage                  # markdown table on stdout (docs/collages.md)
    .venv/bin/python -m bench.collage --rounds 50
    .venv/bin/python -m bench.collage --screenshots docs/screenshots   # also write collage-<n>.jpg

Pure: the builder and the image helpers, no Django and no storage (fetching the 16 files from disk
or S3 is not measured). The pictures are the sample photos plus crops and mirror images of them,
turned into real renditions by everhash/lib/images.py; each round decodes the 16 medium
renditions in full (the baseline), then builds the collage the way collages/services.py does:
decode each rendition at the scale its tiles need, compose both formats, encode both JPEGs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import PIL
from PIL import Image

from collages import builder
from everhash.lib.images import VerifiedImage, make_renditions

ROOT = Path(__file__).resolve().parent.parent

PHOTOS_DIR = ROOT / "tweets" / "sample_data" / "photos"

# (photo, crop box or None, mirrored), most liked first: the nine sample photos, then seven
# crops and mirror images of them, so 16 different pictures.
PICTURES = [
    ("astronaut.png", None, False),
    ("chelsea.png", None, False),
    ("coffee.png", None, False),
    ("rocket.jpg", None, False),
    ("hubble_deep_field.jpg", None, False),
    ("retina.jpg", None, False),
    ("brick.png", None, False),
    ("grass.png", None, False),
    ("gravel.png", None, False),
    ("chelsea.png", (100, 20, 400, 260), False),
    ("hubble_deep_field.jpg", (500, 0, 1000, 400), False),
    ("astronaut.png", (150, 0, 350, 200), True),
    ("coffee.png", (150, 50, 450, 300), True),
    ("retina.jpg", (400, 400, 1000, 900), False),
    ("rocket.jpg", (200, 0, 500, 427), False),
    ("hubble_deep_field.jpg", (0, 400, 600, 872), False),
]
SCREENSHOT_COUNTS = (1, 2, 3, 5, 7, 16)


def renditions(*, long_side: int | None = None) -> list[dict[str, tuple[bytes, int, int]]]:
    """Every picture's renditions, as ingestion stores them: name -> (jpeg, width, height).

    With `long_side`, each picture is first resized to that long side, as if it came from a phone
    (4032 px: 12 megapixels), so every medium rendition is a full 1024 px.
    """
    made = []
    for name, box, mirrored in PICTURES:
        with Image.open(PHOTOS_DIR / name) as photo:
            image = photo.convert("RGB")
        if box:
            image = image.crop(box)
        if mirrored:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if long_side:
            scale = long_side / max(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        made.append(make_renditions(VerifiedImage(image, "PNG", image.width, image.height)))
    return made


def decode(data: bytes) -> Image.Image:
    with Image.open(BytesIO(data)) as image:
        image.load()
        return image


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def benchmark(made: list[dict[str, tuple[bytes, int, int]]], *, title: str, rounds: int) -> str:
    mediums = [picture["medium"][0] for picture in made]
    pixels = sum(picture["medium"][1] * picture["medium"][2] for picture in made)
    sizes = builder.tile_sizes(len(mediums))
    images: list[Image.Image] = []

    def full_decode() -> None:
        for data in mediums:
            decode(data)

    def open_at_tile_scale() -> None:
        images[:] = [builder.open_rendition(data, sizes=s) for data, s in zip(mediums, sizes, strict=True)]

    def compose_and_encode() -> None:
        builder.encode(images)

    def build_from_full_decode() -> None:
        builder.encode([decode(data) for data in mediums])

    steps = {
        "baseline": full_decode,
        "open": open_at_tile_scale,
        "encode": compose_and_encode,
        "full": build_from_full_decode,
    }
    for function in steps.values():  # warm up
        function()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, function in steps.items():
            times[name].append(timed(function))
    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    total = median["open"] + median["encode"]
    base = median["baseline"]

    lines = [
        f"{title}: {len(mediums)} medium renditions, {pixels / 1e6:.1f} megapixels in all; median of {rounds} rounds.",
        "",
        "| step | ms | × decoding the 16 renditions |",
        "|---|---:|---:|",
        f"| decode the 16 renditions in full (baseline) | {base:.1f} | 1.00 |",
        f"| collage: decode each rendition at the scale its tiles need | {median['open']:.1f} "
        f"| {median['open'] / base:.2f} |",
        f"| collage: compose 1200x630 and 1080x1080, encode both JPEGs | {median['encode']:.1f} "
        f"| {median['encode'] / base:.2f} |",
        f"| **collage, total** | **{total:.1f}** | **{total / base:.2f}** |",
        f"| (for comparison) collage from fully decoded renditions | {median['full']:.1f} "
        f"| {median['full'] / base:.2f} |",
    ]
    return "\n".join(lines)


def screenshots(folder: Path) -> list[Path]:
    """The collages of the first n pictures, both formats, as the builder encodes them."""
    folder.mkdir(parents=True, exist_ok=True)
    larges = [picture["large"][0] for picture in renditions()]
    written = []
    for count in SCREENSHOT_COUNTS:
        sizes = builder.tile_sizes(count)
        images = [builder.open_rendition(data, sizes=s) for data, s in zip(larges[:count], sizes, strict=True)]
        jpegs = builder.encode(images)
        for name, suffix in (("landscape", ""), ("square", "-square")):
            path = folder / f"collage-{count}{suffix}.jpg"
            path.write_bytes(jpegs[name])
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--screenshots", type=Path, metavar="DIR", help="Also write collage-<n>.jpg there.")
    args = parser.parse_args()
    if args.screenshots:
        for path in screenshots(args.screenshots):
            print(f"wrote {path} ({path.stat().st_size // 1024} KB)", file=sys.stderr)
    print(f"Python {platform.python_version()}, Pillow {PIL.__version__}, {platform.machine()}, {os.cpu_count()} CPUs.")
    print()
    print(benchmark(renditions(), title="The sample photos as they are (most under 1024 px)", rounds=args.rounds))
    print()
    phone = renditions(long_side=4032)
    print(benchmark(phone, title="The same pictures at phone size (4032 px originals)", rounds=args.rounds))


if __name__ == "__main__":
    main()
