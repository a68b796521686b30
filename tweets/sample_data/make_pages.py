"""Regenerate the sample source's recorded pages and recipes (deterministic).

Run from the repository root:

    .venv/bin/python tweets/sample_data/make_pages.py

It writes, replacing what is there:

- `tweets/sample_data/pages/<hashtag>-<n>.json`: X API v2 recent-search payloads
  (`data`, `includes.media`, `includes.users`, `meta`), 100 posts a page, newest
  first, the way X would have answered `#<hashtag> has:images -is:retweet`;
- `tweets/sample_data/recipes.json`: variant name -> recipe (bundled photo,
  operations, scale, format, quality); a re-encoded or resized copy also names
  the variant it copies in `copy_of` (a duplicate the album must skip).

Everything is fixed: a seeded random generator (SEED), a fixed clock (NOW, the
posts spread over the 5 days before it), and photo sizes measured by rendering
each variant with `tweets.sample.render`. Running it twice gives identical
files; change SEED or the tables below to change the sample, then run
`pytest tweets/tests/test_sample.py`, which checks every intended duplicate
and distinct picture against the product's dedupe.
"""

from __future__ import annotations

import io
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGES_DIR = HERE / "pages"
RECIPES = HERE / "recipes.json"
SEED = 2026
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=5)
PAGE_SIZE = 100
X_EPOCH_MS = 1288834974657  # X ids are snowflakes: milliseconds since this, shifted left by 22 bits

# id, handle, display name: invented people, some names with emoji, non-ASCII
# letters, right-to-left script and one with markup that templates must escape.
AUTHORS = [
    ("1042331", "mira_snaps", "Mira Kowalczyk 📷"),
    ("1177002", "joao_fotos", "João Fotógrafo"),
    ("1290455", "zoe_in_tokyo", "ゾーイ Zoë"),
    ("1304917", "markup_mallory", "<b>markup</b> Mallory"),
    ("1411860", "katya_cats", "Катя 🐈"),
    ("1523344", "bjorn_outdoors", "Björn Ødegård"),
    ("1600213", "astro_amy", "Amy ✨🚀"),
    ("1755908", "coffee_cal", "Cal ☕"),
    ("1802776", "hugo_looks_up", "Hugo"),
    ("1938450", "leah_pics", "Leah Cohen — photos"),
    ("2011384", "samir_k", "سمير"),
    ("2107765", "nightowl_nia", "Nia 🌙"),
    ("2260941", "texture_ted", "Ted (textures)"),
    ("2388120", "plainpaul", "Paul"),
    ("2499017", "quiet_quinn", "Quinn & co."),
]

SUBJECTS = {
    "astronaut": ("an astronaut in her flight suit", ["Ready for launch", "Space suit day", "Mission portrait"]),
    "chelsea": ("a tabby cat looking sideways", ["Chelsea again", "Look at this face", "The office cat"]),
    "coffee": ("a cup of coffee on a saucer", ["Morning fuel", "Coffee first", "Flat white o'clock"]),
    "rocket": ("a rocket lifting off", ["Liftoff!", "Launch day", "There it goes"]),
    "retina": ("a photo of a human retina", ["Eye exam, but make it art", "Look closer", "Retina scan"]),
    "hubble_deep_field": ("galaxies of the Hubble deep field", ["So many galaxies", "Deep field", "We are small"]),
    "brick": ("a brick wall", ["Wall texture", "Bricks", "Found a nice wall"]),
    "grass": ("close-up of grass", ["Grass, up close", "Lawn texture", "Touch grass"]),
    "gravel": ("close-up of gravel", ["Gravel path", "Little stones", "Texture hunting"]),
}
PHOTO_FILES = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "retina": "retina.jpg",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "brick": "brick.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
}

# The distinct pictures of #everhashdemo: (photo, operations). The colour
# photos carry most variants; the greyscale textures only get geometric ones
# and inversion, which stay distinct for them.
_COLOUR_FULL = [
    [],
    ["greyscale"],
    ["sepia"],
    ["brighten"],
    ["darken"],
    ["contrast-up"],
    ["contrast-down"],
    ["blur"],
    ["sharpen"],
    ["invert"],
    ["mirror"],
    ["rotate90"],
    ["rotate180"],
    ["rotate270"],
    ["crop-centre"],
    ["crop-top-left"],
    ["mirror", "sepia"],
    ["rotate90", "greyscale"],
]
_COLOUR_SHORT = [
    [],
    ["greyscale"],
    ["sepia"],
    ["brighten"],
    ["darken"],
    ["contrast-up"],
    ["invert"],
    ["mirror"],
    ["rotate90"],
    ["rotate180"],
    ["crop-centre"],
    ["crop-bottom-right"],
]
_TEXTURE = [[], ["mirror"], ["rotate90"], ["invert"], ["crop-centre"], ["rotate90", "invert"]]
DEMO_DISTINCT = (
    [(photo, ops) for photo in ("astronaut", "chelsea", "coffee", "rocket") for ops in _COLOUR_FULL]
    + [(photo, ops) for photo in ("retina", "hubble_deep_field") for ops in _COLOUR_SHORT]
    + [(photo, ops) for photo in ("brick", "grass", "gravel") for ops in _TEXTURE]
)
# Copies of earlier #everhashdemo pictures that the album must skip as duplicates:
# (variant copied, what changes, name suffix). An empty change is the same bytes again.
DEMO_DUPLICATES = [
    ("chelsea-original", {}, "repost"),
    ("astronaut-original", {"quality": 70}, "q70"),
    ("coffee-sepia", {"format": "PNG"}, "png"),
    ("rocket-original", {"format": "PNG"}, "png"),
    ("retina-original", {"scale": 0.6}, "60pct"),
    ("hubble_deep_field-mirror", {"scale": 0.5, "quality": 80}, "50pct"),
    ("astronaut-mirror", {"scale": 0.75, "quality": 80}, "75pct"),
    ("coffee-original", {"format": "JPEG", "quality": 85}, "jpeg"),
    ("rocket-rotate90", {"scale": 0.66}, "66pct"),
    ("grass-original", {"quality": 62}, "q62"),
]
# Larger than the bundled photo, so the sample has sizes from 0.1 to 4 megapixels. Not the Hubble
# deep field: most of its pixels sit at one colour-histogram bin edge, and a Lanczos 2x upscale then
# a 50% copy shifts them across it (the dedupe misses that copy: histogram RMS 0.016 > 0.012).
UPSCALED = {
    "chelsea-original": 3.0,
    "chelsea-mirror": 2.5,
    "coffee-original": 2.5,
    "astronaut-original": 3.0,
    "astronaut-sepia": 2.0,
    "rocket-original": 3.0,
    "coffee-greyscale": 3.0,
    "retina-original": 1.4,
    "brick-rotate90": 2.0,
}
# Variants encoded as PNG (the rest are JPEG, as X serves them).
PNG = {"coffee-original", "astronaut-invert", "chelsea-crop-centre", "brick-original", "gravel-mirror"}
# Photos posted together: a 4-photo post, a 2-photo post, and a photo posted with a video.
DEMO_FOUR = ["coffee-contrast-up", "coffee-mirror", "coffee-rotate180", "coffee-blur"]
DEMO_TWO = ["rocket-greyscale", "rocket-crop-centre"]
DEMO_WITH_VIDEO = "astronaut-rotate90"
SENSITIVE = "retina-invert"

# #catsofeverhash: a small album, mostly the cat. Two posts carry both hashtags
# (the same post lands in both albums); variant names shared with #everhashdemo
# are the same picture in another album, which is kept.
CATS_DISTINCT = [
    ("chelsea", []),
    ("chelsea", ["sepia"]),
    ("chelsea", ["crop-top-right"]),
    ("chelsea", ["crop-bottom-left"]),
    ("chelsea", ["rotate180", "greyscale"]),
    ("chelsea", ["mirror", "brighten"]),
    ("chelsea", ["contrast-up"]),
    ("chelsea", ["rotate270"]),
    ("chelsea", ["invert"]),
    ("chelsea", ["mirror", "darken"]),
    ("coffee", ["sepia"]),
    ("coffee", ["mirror"]),
]
CATS_DUPLICATES = [("chelsea-mirror-brighten", {"quality": 65}, "q65")]
SHARED_POSTS = ["chelsea-original", "chelsea-sepia"]  # posted with both hashtags


def variant_name(photo: str, ops: list[str]) -> str:
    return f"{photo}-{'-'.join(ops) if ops else 'original'}"


def snowflake(moment: datetime, *, worker: int, sequence: int = 0) -> str:
    ms = int(moment.timestamp() * 1000) - X_EPOCH_MS
    return str((ms << 22) | (worker << 12) | sequence)


def x_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Sample:
    """Builds recipes and posts for both hashtags with one seeded generator."""

    def __init__(self) -> None:
        self.rng = random.Random(SEED)  # noqa: S311  (a reproducible fixture, not security)
        self.recipes: dict[str, dict] = {}
        self.sizes: dict[str, tuple[int, int]] = {}

    # Recipes ---------------------------------------------------------------

    def add_variant(self, photo: str, ops: list[str]) -> str:
        from everhash.testing.edits import changes

        if ops and changes("+".join(ops)) != ops:  # each operation must make another picture
            raise ValueError(f"{ops} are not all edits that change a photo in everhash/testing/edits.py")
        name = variant_name(photo, ops)
        if name not in self.recipes:
            fmt = "PNG" if name in PNG else "JPEG"
            recipe = {"photo": PHOTO_FILES[photo], "ops": ops, "scale": UPSCALED.get(name, 1.0), "format": fmt}
            if fmt == "JPEG":
                recipe["quality"] = self.rng.choice([82, 85, 88, 90, 92, 95])
            self.recipes[name] = recipe
        return name

    def add_copy(self, original: str, change: dict, suffix: str) -> str:
        recipe = {**self.recipes[original], **change, "copy_of": original}
        if "scale" in change:
            recipe["scale"] = round(self.recipes[original]["scale"] * change["scale"], 4)
        if recipe["format"] == "PNG":
            recipe.pop("quality", None)
        elif "quality" not in recipe:
            recipe["quality"] = 88
        name = f"{original}-{suffix}"
        self.recipes[name] = recipe
        return name

    def measure(self) -> None:
        from PIL import Image

        from tweets.sample import render

        for name, recipe in self.recipes.items():
            with Image.open(io.BytesIO(render(recipe))) as im:
                self.sizes[name] = im.size

    # Posts -----------------------------------------------------------------

    def plan(self, *, distinct: list[str], duplicates: list[str], groups: list[list[str]]) -> list[dict]:
        """Post plans in time order: every distinct variant once, each copy after its original."""
        grouped = {name for group in groups for name in group}
        plans = [{"photos": [name]} for name in distinct if name not in grouped]
        plans += [{"photos": list(group)} for group in groups]
        self.rng.shuffle(plans)
        for copy in duplicates:
            original = self.recipes[copy]["copy_of"]
            after = next(i for i, p in enumerate(plans) if original in p["photos"])
            plans.insert(self.rng.randint(after + 1, len(plans)), {"photos": [copy]})
        return plans

    def text(self, photo_names: list[str], tags: str) -> str:
        recipe = self.recipes[photo_names[0]]
        subject = recipe["photo"].rsplit(".", 1)[0]
        phrase = self.rng.choice(SUBJECTS[subject][1])
        extra = self.rng.choice(["", "", " 😍", " ✨", " (edited)", " #photography", " — what do you think?"])
        return f"{phrase}{extra} {tags}"

    def alt_text(self, name: str) -> str:
        recipe = self.recipes[name]
        if self.rng.random() > 0.35:
            return ""
        subject = SUBJECTS[recipe["photo"].rsplit(".", 1)[0]][0]
        from everhash.testing.edits import EDITS  # the catalogue's captions (sys.path: see __main__)

        words = [EDITS[op].words for op in recipe["ops"]]
        return (subject[0].upper() + subject[1:] + (", " + ", ".join(words) if words else "")) + "."

    def likes(self) -> int:
        """Like counts spread over orders of magnitude, as on a real hashtag: 0 to 5000."""
        return min(5000, int(10 ** self.rng.uniform(0, 3.75)) - 1)

    def times(self, count: int) -> list[datetime]:
        start = NOW - SPAN
        seconds = sorted(self.rng.sample(range(60, int(SPAN.total_seconds()) - 60), count))
        return [start + timedelta(seconds=s, milliseconds=self.rng.randrange(1000)) for s in seconds]


def photo_media(sample: Sample, name: str, key: str) -> dict:
    width, height = sample.sizes[name]
    media = {"media_key": key, "type": "photo", "url": f"sample://{name}", "width": width, "height": height}
    alt = sample.alt_text(name)
    if alt:
        media["alt_text"] = alt
    return media


def build_post(sample: Sample, *, when: datetime, author: tuple, text: str, sensitive: bool = False) -> dict:
    post_id = snowflake(when, worker=sample.rng.randrange(1, 32))
    likes = sample.likes()
    return {
        "id": post_id,
        "edit_history_tweet_ids": [post_id],
        "text": text,
        "author_id": author[0],
        "created_at": x_time(when),
        "attachments": {"media_keys": []},
        "possibly_sensitive": sensitive,
        "public_metrics": {
            "retweet_count": likes // 7,
            "reply_count": likes // 23,
            "like_count": likes,
            "quote_count": likes // 97,
        },
        "lang": "en",
    }


def make_post(sample: Sample, plan: dict, *, when: datetime, tags: str, media: dict, made: dict) -> dict:
    """One post from its plan, adding its media to `media`; `made` maps variant names to posts so far."""
    if plan.get("retweet_of"):
        # A retweet repeats the original's text and media: it must be dropped, never credited to the retweeter.
        original = made[plan["retweet_of"]]
        handle = next(a[1] for a in AUTHORS if a[0] == original["author_id"])
        post = build_post(sample, when=when, author=plan["author"], text=f"RT @{handle}: {original['text']}")
        post["attachments"]["media_keys"] = list(original["attachments"]["media_keys"])
        post["referenced_tweets"] = [{"type": "retweeted", "id": original["id"]}]
        return post
    author = plan.get("author") or sample.rng.choice(AUTHORS)
    text = plan.get("text") or sample.text(plan["photos"], plan.get("tags", tags))
    post = build_post(sample, when=when, author=author, text=text, sensitive=plan.get("sensitive", False))
    if plan.get("likes") is not None:
        post["public_metrics"]["like_count"] = plan["likes"]
    keys = post["attachments"]["media_keys"]
    for n, name in enumerate(plan["photos"]):
        key = "3_" + snowflake(when - timedelta(seconds=20 + n), worker=31, sequence=n)
        media[key] = photo_media(sample, name, key)
        keys.append(key)
        made[name] = post
    for kind, prefix in plan.get("videos", []):
        key = prefix + snowflake(when - timedelta(seconds=40), worker=30)
        media[key] = {
            "media_key": key,
            "type": kind,
            "preview_image_url": f"sample://{kind}-preview-{key}",  # not a recipe: never to be downloaded
            "width": 1280,
            "height": 720,
        }
        if kind == "video":
            media[key]["duration_ms"] = 12_000
        keys.append(key)
    return post


def write_pages(pages_dir: Path, hashtag: str, posts: list[dict], media: dict, users: dict) -> list[Path]:
    newest_first = sorted(posts, key=lambda p: int(p["id"]), reverse=True)
    chunks = [newest_first[i : i + PAGE_SIZE] for i in range(0, len(newest_first), PAGE_SIZE)]
    files = []
    for number, chunk in enumerate(chunks, start=1):
        keys = {k for p in chunk for k in p["attachments"]["media_keys"]}
        authors = {p["author_id"] for p in chunk}
        meta = {"newest_id": chunk[0]["id"], "oldest_id": chunk[-1]["id"], "result_count": len(chunk)}
        if number < len(chunks):
            meta["next_token"] = f"sample-page-{number + 1}"
        payload = {
            "data": chunk,
            "includes": {
                "media": [media[k] for k in sorted(keys)],
                "users": [users[a] for a in sorted(authors)],
            },
            "meta": meta,
        }
        path = pages_dir / f"{hashtag}-{number}.json"
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        files.append(path)
    return files


def generate(*, pages_dir: Path = PAGES_DIR, recipes_path: Path = RECIPES) -> list[str]:
    """Write the pages and the recipes; returns a summary, one line per file and one for the counts."""
    sample = Sample()
    users = {a[0]: {"id": a[0], "username": a[1], "name": a[2]} for a in AUTHORS}
    by_handle = {a[1]: a for a in AUTHORS}

    demo = [sample.add_variant(photo, ops) for photo, ops in DEMO_DISTINCT]
    demo_copies = [sample.add_copy(*dup) for dup in DEMO_DUPLICATES]
    cats = [sample.add_variant(photo, ops) for photo, ops in CATS_DISTINCT]
    cats_copies = [sample.add_copy(*dup) for dup in CATS_DUPLICATES]
    sample.measure()

    # #everhashdemo
    plans = sample.plan(distinct=demo, duplicates=demo_copies, groups=[DEMO_FOUR, DEMO_TWO, [DEMO_WITH_VIDEO]])
    for plan in plans:
        if plan["photos"] == [DEMO_WITH_VIDEO]:
            plan["videos"] = [("video", "7_")]
        if plan["photos"] == [SENSITIVE]:
            plan["sensitive"] = True
        if plan["photos"][0] in SHARED_POSTS:
            plan["tags"] = "#everhashdemo #catsofeverhash 🐱"
    # Markup in a post's text and in an author's name, quotes and ampersands, a 0-like and a 5000-like post.
    plain = [p for p in plans if len(p["photos"]) == 1 and "tags" not in p and not p.get("sensitive")]
    plain[3]["text"] = "<script>alert(1)</script> is not a caption, but this is #everhashdemo"
    plain[5]["author"] = by_handle["markup_mallory"]
    plain[7]["text"] = 'Salt & pepper, <3 & "quotes" #everhashdemo'
    plain[9]["likes"] = 0
    plain[11]["likes"] = 5000
    # Posts the parser drops: a video, a GIF, and a retweet of a photo post.
    specials = [
        {"photos": [], "videos": [("video", "7_")], "text": "Launch video, sound on 🔊 #everhashdemo"},
        {"photos": [], "videos": [("animated_gif", "16_")], "text": "when the coffee kicks in #everhashdemo"},
        {"photos": [], "retweet_of": "astronaut-original", "author": by_handle["plainpaul"]},
    ]
    for special in specials:
        lowest = 0
        if special.get("retweet_of"):
            lowest = 1 + next(i for i, p in enumerate(plans) if special["retweet_of"] in p["photos"])
        plans.insert(sample.rng.randint(lowest, len(plans)), special)

    media: dict[str, dict] = {}
    made: dict[str, dict] = {}
    demo_posts = [
        make_post(sample, plan, when=when, tags="#everhashdemo", media=media, made=made)
        for plan, when in zip(plans, sample.times(len(plans)), strict=True)
    ]

    # #catsofeverhash: its own posts, plus the demo posts that carry both hashtags.
    cat_plans = sample.plan(distinct=[c for c in cats if c not in SHARED_POSTS], duplicates=cats_copies, groups=[])
    cat_posts = [
        make_post(sample, plan, when=when, tags="#catsofeverhash", media=media, made={})
        for plan, when in zip(cat_plans, sample.times(len(cat_plans)), strict=True)
    ]
    cat_posts += [made[name] for name in SHARED_POSTS]

    pages_dir.mkdir(parents=True, exist_ok=True)
    for old in pages_dir.glob("*.json"):
        old.unlink()
    written = write_pages(pages_dir, "everhashdemo", demo_posts, media, users)
    written += write_pages(pages_dir, "catsofeverhash", cat_posts, media, users)
    recipes_path.write_text(json.dumps(sample.recipes, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return [f"{path.name}: {path.stat().st_size} bytes" for path in [*written, recipes_path]] + [
        f"#everhashdemo: {len(demo_posts)} posts, {len(demo)} distinct pictures, {len(demo_copies)} duplicates; "
        f"#catsofeverhash: {len(cat_posts)} posts, {len(cats)} distinct pictures, {len(cats_copies)} duplicates"
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))  # the repository root, for tweets.sample and everhash.testing
    print("\n".join(generate()))
