"""The bundled sample source: recorded pages served like X's recent search, photos rendered on demand."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re

import pytest
from PIL import Image

from tweets import sample
from tweets.sample import DATA_DIR, SampleSource
from tweets.sources import MediaError, Photo, Post, SourceError
from tweets.x_api import parse_search_response

PAGES = sorted((DATA_DIR / "pages").glob("*.json"))
RECIPES = json.loads((DATA_DIR / "recipes.json").read_text(encoding="utf-8"))


def walk(source: SampleSource, hashtag: str, since_id: str | None = None) -> list:
    """Every page for a hashtag, following next_token the way fetch_tweets does."""
    pages = [source.search(hashtag=hashtag, since_id=since_id)]
    while pages[-1].next_token:
        pages.append(source.search(hashtag=hashtag, since_id=since_id, next_token=pages[-1].next_token))
        assert len(pages) < 100, "next_token never ran out"
    return pages


def all_posts(hashtag: str) -> list[Post]:
    return [post for page in walk(SampleSource(), hashtag) for post in page.posts]


def variant(photo: Photo) -> str:
    return photo.url.removeprefix("sample://").split("?", 1)[0]


def test_every_recorded_page_parses_as_an_x_search_response():
    assert {p.name for p in PAGES} >= {"everhashdemo-1.json", "everhashdemo-2.json", "catsofeverhash-1.json"}
    for path in PAGES:
        payload = json.loads(path.read_text(encoding="utf-8"))
        page = parse_search_response(payload)
        assert 0 < len(payload["data"]) <= 100
        assert payload["meta"]["result_count"] == len(payload["data"])
        assert payload["meta"]["newest_id"] == payload["data"][0]["id"]
        ids = [int(post["id"]) for post in payload["data"]]
        assert ids == sorted(ids, reverse=True), f"{path.name} is not newest first"
        assert page.posts, path.name
        for post in page.posts:
            assert post.photos and all(photo.url.startswith("sample://") for photo in post.photos)


def test_the_parser_drops_the_video_gif_and_retweet_posts_but_keeps_the_photo_next_to_a_video():
    raw = [
        post for path in PAGES if path.name.startswith("everhashdemo") for post in json.loads(path.read_text())["data"]
    ]
    kept = all_posts("everhashdemo")
    assert len(raw) - len(kept) == 3
    assert not [post for post in kept if post.text.startswith("RT @")]
    media_types = {
        m["media_key"]: m["type"] for path in PAGES for m in json.loads(path.read_text())["includes"]["media"]
    }
    with_video = [p for p in kept if any(media_types[k] == "video" for k in _media_keys(raw, p.id))]
    assert len(with_video) == 1 and len(with_video[0].photos) == 1


def _media_keys(raw: list[dict], post_id: str) -> list[str]:
    return next(p["attachments"]["media_keys"] for p in raw if p["id"] == post_id)


def test_everhashdemo_has_at_least_110_distinct_pictures_and_about_10_copies():
    photos = [variant(photo) for post in all_posts("everhashdemo") for photo in post.photos]
    distinct = [name for name in photos if "copy_of" not in RECIPES[name]]
    copies = [name for name in photos if "copy_of" in RECIPES[name]]
    assert len(distinct) == len(set(distinct)) >= 110
    assert 8 <= len(copies) <= 12
    sizes = [len(post.photos) for post in all_posts("everhashdemo")]
    assert 4 in sizes and 2 in sizes


def test_catsofeverhash_is_a_small_album_sharing_two_posts_with_everhashdemo():
    cats = all_posts("catsofeverhash")
    photos = [variant(photo) for post in cats for photo in post.photos]
    assert 10 <= len(photos) <= 15
    assert sum(name.startswith("chelsea") for name in photos) > len(photos) / 2
    demo_ids = {post.id for post in all_posts("everhashdemo")}
    shared = [post for post in cats if post.id in demo_ids]
    assert len(shared) == 2
    assert all("#everhashdemo" in post.text and "#catsofeverhash" in post.text for post in shared)


def test_every_copy_names_its_original_and_is_posted_after_it_in_the_same_hashtag():
    for hashtag in ("everhashdemo", "catsofeverhash"):
        order = [variant(photo) for post in reversed(all_posts(hashtag)) for photo in post.photos]
        for position, name in enumerate(order):
            original = RECIPES[name].get("copy_of")
            if original:
                assert original in order[:position], f"{name} is posted before {original}"
                assert RECIPES[original]["photo"] == RECIPES[name]["photo"]
                assert RECIPES[original]["ops"] == RECIPES[name]["ops"]


@pytest.mark.parametrize("page_size", [100, 7])
def test_paging_with_next_token_walks_every_post_exactly_once_newest_first(page_size):
    source = SampleSource(page_size=page_size)
    pages = walk(source, "everhashdemo")
    ids = [post.id for page in pages for post in page.posts]
    raw = [p for path in PAGES if path.name.startswith("everhashdemo") for p in json.loads(path.read_text())["data"]]
    assert len(pages) == -(-len(raw) // page_size)
    assert len(ids) == len(set(ids)) == len(raw) - 3  # the video, the GIF and the retweet are dropped
    assert [int(i) for i in ids] == sorted((int(i) for i in ids), reverse=True)
    assert source.requests_made == 0
    assert sum(page.posts_read for page in pages) == len(raw)  # every post returned counts
    assert pages[0].newest_id == max(raw, key=lambda p: int(p["id"]))["id"]


def test_the_first_page_is_the_recorded_first_page():
    recorded = parse_search_response(json.loads((DATA_DIR / "pages" / "everhashdemo-1.json").read_text()))
    served = SampleSource().search(hashtag="everhashdemo")
    assert served.posts == recorded.posts
    assert served.next_token == recorded.next_token == "sample-page-2"


def test_since_id_returns_only_newer_posts():
    everything = all_posts("everhashdemo")
    since = everything[30].id
    newer = [post for page in walk(SampleSource(page_size=10), "everhashdemo", since_id=since) for post in page.posts]
    assert [post.id for post in newer] == [post.id for post in everything[:30]]
    assert SampleSource().search(hashtag="everhashdemo", since_id=everything[0].id).posts == []


def test_a_next_token_issued_under_since_id_keeps_it_when_used_alone():
    everything = all_posts("everhashdemo")
    source = SampleSource(page_size=10)
    page = source.search(hashtag="everhashdemo", since_id=everything[30].id)
    posts = list(page.posts)
    while page.next_token:
        page = source.search(hashtag="everhashdemo", next_token=page.next_token)
        posts += page.posts
    assert [post.id for post in posts] == [post.id for post in everything[:30]]


def test_an_unknown_hashtag_gives_an_empty_page_and_hashtags_ignore_case_and_hash():
    source = SampleSource()
    for hashtag in ("nosuchtag", "../pages/everhashdemo", "*", ""):
        page = source.search(hashtag=hashtag)
        assert page.posts == [] and page.next_token is None and page.newest_id is None
    assert source.search(hashtag="#EverhashDemo").posts == source.search(hashtag="everhashdemo").posts


@pytest.mark.parametrize("token", ["sample-page-1", "page-2", "sample-page-x", "sample-page-2-since-abc"])
def test_a_next_token_the_sample_never_issued_is_a_source_error(token):
    with pytest.raises(SourceError):
        SampleSource().search(hashtag="everhashdemo", next_token=token)


def test_post_ids_are_19_digit_strings_increasing_with_time_and_media_keys_look_like_x():
    posts = all_posts("everhashdemo")
    assert all(re.fullmatch(r"[1-9][0-9]{18}", post.id) for post in posts)
    by_time = sorted(posts, key=lambda post: post.posted_at)
    assert [post.id for post in by_time] == sorted((post.id for post in posts), key=int)
    assert all(re.fullmatch(r"3_[0-9]{19}", photo.media_key) for post in posts for photo in post.photos)
    span = by_time[-1].posted_at - by_time[0].posted_at
    assert 4 <= span.days <= 5 and by_time[-1].posted_at.isoformat() < "2026-11-15T12:00:00"


def test_the_sample_carries_markup_to_escape_sensitive_media_and_varied_likes():
    posts = all_posts("everhashdemo")
    assert any("<script>alert(1)</script>" in post.text for post in posts)
    assert any("<b>markup</b>" in post.author_name for post in posts)
    assert any(not name.isascii() for name in {post.author_name for post in posts})
    assert sum(post.sensitive for post in posts) == 1
    likes = {post.like_count for post in posts}
    assert min(likes) == 0 and max(likes) == 5000 and len(likes) > 50
    assert any(photo.alt_text for post in posts for photo in post.photos)


@pytest.fixture(scope="module")
def downloaded() -> dict[str, dict[str, bytes]]:
    """hashtag -> variant -> the bytes SampleSource.download gives, for every photo of both hashtags."""
    source = SampleSource()
    return {
        hashtag: {variant(photo): source.download(photo) for post in all_posts(hashtag) for photo in post.photos}
        for hashtag in ("everhashdemo", "catsofeverhash")
    }


def test_download_returns_decodable_image_bytes_of_the_recorded_size(downloaded):
    megapixels = []
    for hashtag in ("everhashdemo", "catsofeverhash"):
        for post in all_posts(hashtag):
            for photo in post.photos:
                with Image.open(io.BytesIO(downloaded[hashtag][variant(photo)])) as im:
                    assert im.format == RECIPES[variant(photo)]["format"]
                    im.load()
                    assert im.size == (photo.width, photo.height), variant(photo)
                    assert im.mode == "RGB"
                    assert not {"exif", "icc_profile", "comment", "dpi"} & set(im.info)
                megapixels.append(photo.width * photo.height / 1e6)
    assert min(megapixels) < 0.15 and max(megapixels) > 3


@pytest.fixture(scope="module")
def signatures() -> dict:
    """variant -> what the dedupe computes of it (pictures.dedupe.Examined), filled on first use and
    shared by the orders below."""
    return {}


@pytest.mark.parametrize("hashtag", ["everhashdemo", "catsofeverhash"])
@pytest.mark.parametrize("order", ["oldest first", "newest first"])
def test_the_dedupe_keeps_every_distinct_picture_and_catches_every_copy(downloaded, signatures, hashtag, order):
    """Each photo through the product's dedupe as ingest_photo does: exact bytes first, then signatures.

    "oldest first" is post order, so each copy must match the very original it copies;
    "newest first" is the order fetch_tweets walks the pages, where the copy arrives first.
    """
    from pictures.dedupe import SignatureIndex, examine, find_duplicate

    posts = all_posts(hashtag)
    names = [
        variant(photo) for post in (reversed(posts) if order == "oldest first" else posts) for photo in post.photos
    ]
    index = SignatureIndex.from_rows([])
    by_hash: dict[str, int] = {}
    kept: list[str] = []
    matched: dict[str, str] = {}
    for number, name in enumerate(names):
        data = downloaded[hashtag][name]
        digest = hashlib.sha256(data).hexdigest()
        if digest in by_hash:
            matched[name] = names[by_hash[digest]]
            continue
        if name not in signatures:
            signatures[name] = examine(data)
            signatures[name].forget_image()  # keeps its two small views only
        examined = signatures[name]
        duplicate_of, _ = find_duplicate(
            index=index, candidate=examined, stored=lambda number: signatures[names[number]]
        )
        if duplicate_of is not None:
            matched[name] = names[duplicate_of]
            continue
        index.add(number, examined.signature)
        by_hash[digest] = number
        kept.append(name)

    def picture(name: str) -> str:  # the intended picture: a copy is its original's picture
        return RECIPES[name].get("copy_of", name)

    assert sorted(map(picture, kept)) == sorted({picture(name) for name in names}), "distinct pictures merged"
    assert all(picture(name) == picture(other) for name, other in matched.items()), "wrong original matched"
    assert len(matched) == sum("copy_of" in RECIPES[name] for name in names)
    if order == "oldest first":
        assert {name: picture(name) for name in matched} == matched
        assert all("copy_of" not in RECIPES[name] for name in kept)
    if hashtag == "everhashdemo":
        assert len(kept) >= 110


def test_download_is_deterministic():
    photos = [photo for post in all_posts("everhashdemo")[:12] for photo in post.photos]
    first = [SampleSource().download(photo) for photo in photos]
    sample._photo.cache_clear()
    assert [SampleSource().download(photo) for photo in photos] == first


def test_an_unknown_variant_raises_media_error():
    source = SampleSource()
    with pytest.raises(MediaError):
        source.download(Photo(media_key="3_1", url="sample://no-such-variant?name=orig", width=1, height=1))
    with pytest.raises(MediaError):
        source.download(Photo(media_key="3_1", url="https://pbs.twimg.com/media/x.jpg", width=1, height=1))


def test_make_pages_regenerates_the_committed_files(tmp_path):
    spec = importlib.util.spec_from_file_location("make_pages", DATA_DIR / "make_pages.py")
    make_pages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_pages)
    make_pages.generate(pages_dir=tmp_path / "pages", recipes_path=tmp_path / "recipes.json")
    for path in [*PAGES, DATA_DIR / "recipes.json"]:
        fresh = tmp_path / path.relative_to(DATA_DIR)
        assert fresh.read_bytes() == path.read_bytes(), f"{path.name} differs from make_pages.py's output"
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == [p.name for p in PAGES]
