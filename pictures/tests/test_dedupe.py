"""Duplicate detection: pictures edited with the shared catalogue (everhash/testing/edits.py) and
decided by `same_picture`, the album's signature filter, and ingest deciding the same way.

The whole labelled set (thousands of pairs) is bench/dedupe_eval.py; these are its hardest kinds on a
few pictures, so that a change that breaks them fails here first.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from functools import cache
from io import BytesIO

import numpy as np
import pytest
import pyvips
from django.core.files.storage import default_storage
from PIL import Image

from bench.dedupe_eval import (
    PHOTOS_DIR,
    SOFT_COPIES,
    Pair,
    below_copy_change,
    copy_change_ratios,
    drawing,
    labelled_pairs,
    low_detail,
    resizers,
    sources,
    text_page,
    visibility_ratios,
)
from everhash.lib.images import ImageRejected
from everhash.testing import edits
from everhash.testing.builders import SAMPLE_PHOTOS
from pictures import dedupe, services
from pictures.dedupe import (
    HISTOGRAM_LENGTH,
    Signature,
    SignatureIndex,
    compute_signature,
    decide,
    examine,
    same_picture,
)
from pictures.models import Picture
from pictures.services import ingest_photo, load_signature_index
from tweets.sources import Photo, Post


def _photo(name: str) -> Image.Image:
    with Image.open(PHOTOS_DIR / name) as image:
        return image.convert("RGB")


SOURCES = {
    "chelsea": lambda: _photo("chelsea.png"),
    "rocket": lambda: _photo("rocket.jpg"),
    "hubble": lambda: _photo("hubble_deep_field.jpg"),  # dark, with little colour
    "page": lambda: text_page(np.random.default_rng(7), (500, 650)),
    "drawing": lambda: drawing(np.random.default_rng(8), (520, 400)),
}


@cache
def source(name: str) -> Image.Image:
    return SOURCES[name]()


@cache
def file(name: str, chain: str) -> bytes:
    """The bytes of picture ``name`` after ``chain`` of catalogue edits ("original": lossless PNG)."""
    return edits.render(source(name), chain)


@cache
def examined(name: str, chain: str) -> dedupe.Examined:
    return examine(file(name, chain))


def decided(name: str, a: str, b: str) -> dedupe.Decision:
    """Picture ``name`` after chain ``a`` is in the album; the same after chain ``b`` arrives."""
    return decide(examined(name, a), examined(name, b))


def assert_same(name: str, a: str, b: str, *, same: bool) -> None:
    decision = decided(name, a, b)
    assert decision.same == same, f"{name}: {a} vs {b}: {decision.describe()}"


COPIES = [
    "jpeg-q50",
    "webp-q50",
    "png",
    "resize-50",
    "resize-12",
    "resize-50+webp-q75",
    "resize-25+png",
    # Other platforms' filters, softer than Lanczos.
    "resize-50-bilinear+jpeg-q85",
    "resize-25-box+jpeg-q85",
]


# JPEG q30 was a known miss before the edit model (docs/dedupe.md): its ringing moved tone and SSIM as
# much as a slight edit does.
# Known misses, kept visible (strict: the suite fails when one starts passing, so the list is updated).
# None today. The borderline case is a 12% copy of a page of small text (60 pixels wide, a grey texture
# whose resampling and JPEG noise look like a slight edit): fits of the trees on slightly different train
# halves have accepted and refused it (docs/dedupe.md#results). Refit, then run this file.
KNOWN_MISSES: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize(
    ("name", "copy"),
    [
        pytest.param(
            name,
            copy,
            id=f"{copy}-{name}",
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[name, copy])]
            if (name, copy) in KNOWN_MISSES
            else [],
        )
        for name in SOURCES
        for copy in [*COPIES, "jpeg-q30"]
    ],
)
def test_a_copy_a_platform_makes_is_the_same_picture(name, copy):
    assert edits.keeps_photo(copy)
    assert_same(name, "original", copy, same=True)


@pytest.mark.parametrize("name", SOURCES)
@pytest.mark.parametrize(("a", "b"), [("webp-q75", "jpeg-q50"), ("resize-50", "jpeg-q50"), ("resize-25", "webp-q50")])
def test_two_copies_of_one_picture_are_the_same_picture(name, a, b):
    assert_same(name, a, b, same=True)


EDITS = ["greyscale", "sepia", "brightness+10", "contrast+30", "blur-r2", "sharpen-r2", "mirror", "crop-centre-95"]


# Greyscale or sepia of a black and white page changes nothing, so those two pairs are not asked.
@pytest.mark.parametrize(
    ("name", "edit"),
    [(n, e) for n in ("chelsea", "rocket", "page") for e in EDITS if not (n == "page" and e in ("greyscale", "sepia"))],
)
def test_an_edit_is_a_different_picture(name, edit):
    assert not edits.keeps_photo(edit)
    assert_same(name, "original", edit, same=False)


@pytest.mark.parametrize("edit", [e for e in EDITS if e != "greyscale"])
def test_an_edit_of_a_drawing_is_a_different_picture(edit):
    assert_same("drawing", "original", edit, same=False)


@pytest.mark.parametrize(
    ("name", "stored", "arriving"),
    [("chelsea", "greyscale", "original"), ("hubble", "greyscale+webp-q75", "resize-50")],
)
def test_a_colour_picture_arriving_after_its_greyscale_copy_is_a_different_picture(name, stored, arriving):
    """Ingest meets pictures in either order: the sample album stores Hubble's greyscale copy first."""
    assert_same(name, stored, arriving, same=False)


def test_a_drawing_and_its_greyscale_copy_are_different_pictures():
    """Its few colour fills are a small share of the picture; the chroma gain sees them all go."""
    assert_same("drawing", "original", "greyscale", same=False)


@pytest.mark.parametrize("name", ["page", "drawing"])
def test_two_copies_of_a_page_one_of_them_jpeg_q30_are_the_same_picture(name):
    """JPEG q30 rings around hard edges; the edit model leaves that in its residual, not in an edit."""
    assert_same(name, "jpeg-q30", "webp-q50", same=True)


# --- Nearly flat pictures -------------------------------------------------------------------------


@cache
def flat_picture() -> Image.Image:
    """A soft gradient with one faint blob: the signs of its DCT coefficients (its structure hash) are noise."""
    return low_detail(np.random.default_rng(11), (640, 480))


@pytest.mark.parametrize(("a", "b"), [("original", "jpeg-q30"), ("jpeg-q30", "webp-q50"), ("resize-25", "jpeg-q30")])
def test_copies_of_a_nearly_flat_picture_are_the_same_picture(a, b):
    first, second = (examine(edits.render(flat_picture(), chain)) for chain in (a, b))
    assert dedupe.distances(first.signature, second.signature).structure > dedupe.STRUCTURE_DISTANCE_THRESHOLD

    assert decide(first, second).same


@pytest.mark.parametrize("edit", ["brightness+10", "contrast+10", "rotate180", "crop-centre-80", "sepia"])
def test_an_edit_of_a_nearly_flat_picture_is_a_different_picture(edit):
    original, edited = (examine(edits.render(flat_picture(), chain)) for chain in ("original", edit))

    assert not decide(original, edited).same


def test_the_filter_passes_two_flat_pictures_whatever_their_structure_hashes():
    stored = examine(edits.render(flat_picture(), "original")).signature
    index = SignatureIndex.from_rows([(7, stored.histogram, stored.structure_hash)])
    index.add(8, signature("chelsea", "original"))

    found = index.candidates(examine(edits.render(flat_picture(), "jpeg-q30")).signature)

    assert [picture_id for picture_id, _ in found] == [7]
    assert found[0][1].flat
    assert dedupe.is_flat(np.frombuffer(stored.histogram, np.float32)[-len(dedupe.DETAIL_SCALES) :])
    assert not dedupe.is_flat(np.frombuffer(signature("chelsea", "original").histogram, np.float32)[48:])


@pytest.mark.parametrize("name", ["chelsea", "rocket"])
@pytest.mark.parametrize(("edit", "copy"), [("sharpen-r2", "resize-50"), ("blur-r2", "jpeg-q70"), ("sepia", "png")])
def test_an_edit_is_not_merged_with_a_copy_of_the_original(name, edit, copy):
    assert_same(name, copy, edit, same=False)


@pytest.mark.parametrize("name", ["chelsea", "rocket", "hubble", "page"])
def test_a_half_size_jpeg_copy_quantises_the_original_alike_and_a_blurred_original_not(name):
    """The JPEG test (docs/dedupe.md): the copy's 8 x 8 blocks are what its encoder made of the original
    reduced, so the original reduced quantises to nearly the same values with the copy's steps; the
    original blurred by one pixel gives other values at those steps. A soft sharpening stands out less:
    reduced with a softer filter than the copy's (dedupe.REDUCING_FILTERS), a sharpened original comes
    closer to the copy (docs/dedupe.md, "Other filters"), though not as close as the original."""
    copy = examined(name, "resize-50").stored_view()
    assert copy.luma_table is not None  # a JPEG within the verification size is verified by its own blocks
    same = dedupe.compare(copy, examined(name, "original").view)
    blurred = dedupe.compare(copy, examined(name, "blur-r1").view)
    sharpened = dedupe.compare(copy, examined(name, "sharpen-soft").view)

    assert same.jpeg_tested and blurred.jpeg_tested and sharpened.jpeg_tested
    assert same.jpeg_mismatch < 0.26 < 0.5 < blurred.jpeg_mismatch
    assert same.jpeg_mismatch < sharpened.jpeg_mismatch
    assert not decided(name, "resize-50", "blur-r1").same
    assert decided(name, "resize-50", "original").same


def test_two_pictures_neither_a_jpeg_are_not_jpeg_tested():
    comparison = dedupe.compare(examined("rocket", "original").stored_view(), examined("rocket", "blur-r1").view)
    assert not comparison.jpeg_tested
    assert comparison.jpeg_mismatch == 0


@pytest.mark.parametrize("edit", ["brightness+10", "contrast+10", "saturation+30"])
def test_a_tone_edit_of_a_drawing_with_a_few_colour_fills_is_a_different_picture(edit):
    """White paper and black lines do not move under these edits; the colour fills do. Averaged over the
    picture that is little, but there the 8 x 8 block means move more than any re-encoding moves them."""
    stored = examined("drawing", "original").stored_view()
    edited = dedupe.compare(stored, examined("drawing", edit).view)
    copy = dedupe.compare(stored, examined("drawing", "jpeg-q30").view)

    assert max(edited.local_luma / copy.local_luma, edited.local_chroma / copy.local_chroma) > 2
    assert not decided("drawing", "original", edit).same
    assert not decided("drawing", "jpeg-q50", edit).same


def _retouched(image: Image.Image, share: float, levels: int = -5) -> Image.Image:
    """``image`` with a square patch of about ``share`` of its pixels moved by ``levels`` (darker)."""
    side = max(1, round((share * image.width * image.height) ** 0.5))
    pixels = np.asarray(image.convert("RGB"), np.int16).copy()
    pixels[:side, :side] = np.clip(pixels[:side, :side] + levels, 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


def test_two_png_files_of_one_size_are_the_same_picture_only_with_the_same_pixels():
    """A lossless copy keeps every pixel: between two PNGs of one size, an edit of 1% of the picture
    (a patch darkened by 5 levels, which the score alone takes for a copy) is a different picture, a
    pixel's difference is not."""
    original = source("drawing")
    stored = examine(edits.encode(original, "PNG"))
    assert stored.stored_view().lossless

    decision = decide(stored, examine(edits.encode(_retouched(original, 0.01), "PNG")))
    assert decision.comparison.lossless_moved == pytest.approx(0.01, rel=0.1)
    assert not decision.comparison.keeps_pixels() and not decision.comparison.may_be_same()
    assert not decision.same
    assert "two PNGs: 1.0" in decision.describe()  # the labelled set's report says why

    one_pixel = _retouched(original, 1 / (original.width * original.height))
    assert same_picture(edits.encode(original, "PNG"), edits.encode(one_pixel, "PNG"))
    assert same_picture(edits.encode(original, "PNG"), edits.encode(original, "PNG", compress_level=1))


def test_the_lossless_rule_leaves_a_jpeg_or_a_resized_png_to_the_score():
    original = edits.encode(source("drawing"), "PNG")
    for chain in ("jpeg-q95", "resize-50+png"):
        arriving = examine(file("drawing", chain)).view
        assert dedupe.compare(examine(original).stored_view(), arriving).lossless_moved is None
        assert same_picture(original, file("drawing", chain)), chain


# Larger than the verification box (1024 x 1024), so seen by a rendition once stored: a screenshot's size.
LARGE_PNGS = {
    "drawing": lambda: drawing(np.random.default_rng(8), (1300, 1000)),
    "page": lambda: text_page(np.random.default_rng(7), (1100, 1400)),
}


@pytest.mark.parametrize("name", LARGE_PNGS)
def test_two_pngs_of_one_size_over_the_box_are_the_same_picture_only_with_the_same_pixels(name):
    """The stored rendition's JPEG noise hides the pixels a slight edit moves (the score alone takes each
    edit below for a copy); the rule is applied on both originals' views, which the same pixels make
    the same."""
    original = LARGE_PNGS[name]()
    stored = examine(edits.encode(original, "PNG"))
    assert stored.stored_view().png_size is None  # a rendition
    assert stored.view.png_size == original.size and stored.view.image.size != original.size  # reduced

    for edited in (_retouched(original, 0.01), edits.EDITS["sharpen-soft"].apply(original)):
        arriving = examine(edits.encode(edited, "PNG"))
        by_rendition = dedupe.compare(stored.stored_view(), arriving.view)
        assert dedupe._is_same(dedupe.distances(stored.signature, arriving.signature), by_rendition)

        decision = decide(stored, arriving)
        assert decision.comparison.lossless_moved > dedupe.UNCHANGED_SHARE
        assert not decision.same, decision.describe()

    one_pixel = _retouched(original, 1 / (original.width * original.height), -40)
    for same in (original, one_pixel):
        assert decide(stored, examine(edits.encode(same, "PNG", compress_level=1))).same


def test_the_lossless_rule_over_the_box_needs_two_pngs_of_one_size():
    """A resized PNG copy is reduced to the same view from other pixels, and a JPEG has no exact pixels:
    both are left to the score."""
    original = LARGE_PNGS["drawing"]()
    stored = examine(edits.encode(original, "PNG"))
    for chain in ("resize-75+png", "jpeg-q95"):
        decision = decide(stored, examine(edits.render(original, chain)))
        assert decision.same and decision.comparison.lossless_moved is None, chain


@pytest.mark.parametrize("stored_first", [True, False])
def test_a_jpeg_of_a_png_keeps_its_block_means_and_a_slight_edit_does_not(stored_first):
    """A JPEG made from a lossless picture of its size keeps every 8 x 8 block mean to within its DC
    quantisation: 1% of a photo darkened by 5 levels (which the score alone takes for a copy) is a
    different picture whichever arrives first; the JPEG copies are the same picture."""
    original = source("chelsea")
    jpeg, edited = edits.encode(original, "JPEG", quality=50), edits.encode(_retouched(original, 0.01), "PNG")
    first, second = (jpeg, edited) if stored_first else (edited, jpeg)

    decision = decide(examine(first), examine(second))
    assert decision.comparison.jpeg_block_moved > dedupe.JPEG_BLOCK_LIMIT
    assert not decision.same
    assert "PNG vs JPEG: a block mean" in decision.describe()

    for quality in (95, 50, 30):
        copy = decide(examine(edits.encode(original, "PNG")), examine(edits.encode(original, "JPEG", quality=quality)))
        assert copy.comparison.jpeg_block_moved <= dedupe.JPEG_BLOCK_LIMIT
        assert copy.same, quality


def test_the_block_means_rule_leaves_out_blocks_the_jpeg_decoder_clipped():
    """White paper decodes to 255 in a JPEG whatever ringing it had: such blocks say nothing of their mean,
    so a page whose every block has paper and ink is not measured, and an edit of the paper alone is left
    to the score (a known gap, docs/dedupe.md)."""
    copy = dedupe.compare(examine(file("page", "original")).stored_view(), examine(file("page", "jpeg-q95")).view)
    assert copy.jpeg_block_moved is None
    assert same_picture(file("page", "original"), file("page", "jpeg-q95"))

    paper_darkened = edits.encode(_retouched(source("page"), 0.01, -40), "PNG")  # the top left corner: paper
    edited = dedupe.compare(examine(file("page", "jpeg-q50")).stored_view(), examine(paper_darkened).view)
    assert edited.jpeg_block_moved is not None and edited.jpeg_block_moved <= dedupe.JPEG_BLOCK_LIMIT


def test_ingest_keeps_a_png_whose_pixels_differ_from_a_stored_png_of_its_size(album):
    """The stored original is read back from the storage, so ingest applies the same rule."""
    original = source("drawing")
    assert ingest(album, edits.encode(original, "PNG"), "3_1").kind == "added"

    assert ingest(album, edits.encode(_retouched(original, 0.01), "PNG"), "3_2").kind == "added"
    outcome = ingest(album, edits.encode(original, "PNG", compress_level=1), "3_3")
    assert outcome.kind == "duplicate", outcome.message


@pytest.mark.parametrize("name", ["chelsea", "rocket", "drawing"])
@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("original", "resize-50", True),
        ("webp-q50", "jpeg-q30", True),
        ("jpeg-q50", "blur-r1", False),
        ("resize-50", "sharpen-r2", False),
        ("original", "contrast+10", False),
    ],
)
def test_the_decision_does_not_depend_on_which_picture_arrives_first(name, a, b, same):
    """Ingest meets pictures in either order; the labelled set is measured (and the trees fitted) both ways."""
    assert_same(name, a, b, same=same)
    assert_same(name, b, a, same=same)


@pytest.mark.parametrize("name", ["chelsea", "drawing"])
@pytest.mark.parametrize("edited", ["mirror+resize-25", "blur-r2+jpeg-q70", "greyscale+webp-q75"])
def test_an_edited_copy_re_encoded_is_the_same_picture_as_that_edit(name, edited):
    assert_same(name, edited.rsplit("+", 1)[0], edited, same=True)


def test_the_same_bytes_are_the_same_picture_without_decoding_twice():
    assert decided("chelsea", "png", "png") == dedupe.Decision(True, None, None)


def test_same_picture_works_on_bytes():
    assert same_picture(file("rocket", "original"), file("rocket", "resize-33"))
    assert not same_picture(file("rocket", "original"), file("rocket", "rotate-90"))


# --- Pictures with a colour profile ---------------------------------------------------------------
# The sample rocket carries an Adobe RGB profile (as cameras write; phones write Display P3). Platforms
# make three kinds of copy of such a file: converted to sRGB (image servers: imgproxy, Immich, 500px),
# the profile kept (Mastodon; X for a JPEG), or the profile dropped without converting (X recompressing
# a PNG; most scripts). Ingest sees a picture in sRGB, and a profiled one also by its file's numbers.
CAMERA_FILE = (SAMPLE_PHOTOS / "rocket.jpg").read_bytes()


def platform_copy(kind: str, scale: float, data: bytes = CAMERA_FILE) -> bytes:
    """A copy made by libvips, as an image server makes it: reduced, JPEG Q85, the profile as ``kind`` says."""
    image = pyvips.Image.new_from_buffer(data, "")
    if kind == "converted":
        image = image.icc_transform("srgb", embedded=True, intent="relative")
    image = image.resize(scale, kernel="lanczos3") if scale != 1 else image
    return image.jpegsave_buffer(Q=85, keep="icc" if kind == "kept" else "none")


def profile_dropped(chain: str) -> bytes:
    """The camera file's numbers after ``chain`` of catalogue edits, written without its profile."""
    with Image.open(BytesIO(CAMERA_FILE)) as image:
        return edits.render(image.convert("RGB"), chain)  # edits.encode writes no profile


@pytest.mark.parametrize("scale", [1, 0.5, 0.25])
@pytest.mark.parametrize("kind", ["converted", "kept", "dropped"])
def test_a_platforms_copy_of_a_file_with_a_colour_profile_is_the_same_picture(kind, scale):
    copy = platform_copy(kind, scale)
    assert same_picture(CAMERA_FILE, copy)
    assert same_picture(copy, CAMERA_FILE)


@pytest.mark.parametrize("a", ["converted", "kept", "dropped"])
@pytest.mark.parametrize("b", ["converted", "kept", "dropped"])
def test_two_platforms_copies_of_a_file_with_a_colour_profile_are_the_same_picture(a, b):
    # Except a converted copy and one whose profile was dropped: neither file carries the profile that
    # relates their numbers, which differ as by a colour edit. Kept apart: the safe side.
    assert same_picture(platform_copy(a, 0.5), platform_copy(b, 0.25)) is ({a, b} != {"converted", "dropped"})


@pytest.mark.parametrize(
    "edit", ["saturation+30", "brightness+10", "contrast+10", "blur-r1", "sharpen-soft", "greyscale"]
)
def test_an_edit_of_a_file_with_a_colour_profile_is_a_different_picture_by_colours_and_by_numbers(edit):
    # Adobe RGB to sRGB moves a colour much as a saturation edit does, so both readings are asked.
    edited = profile_dropped(edit)
    assert not same_picture(CAMERA_FILE, edited)
    assert not same_picture(edited, CAMERA_FILE)


def test_same_picture_rejects_what_ingest_rejects():
    with pytest.raises(ImageRejected):
        same_picture(file("rocket", "original"), file("rocket", "jpeg-q85")[:500])


def test_flat_pictures_added_one_by_one_stay_candidates_as_the_index_grows():
    stored = examine(edits.render(flat_picture(), "original")).signature
    index = SignatureIndex(capacity=16)
    for picture_id in range(40):
        index.add(picture_id, stored if picture_id % 2 else signature("rocket", "original"))

    found = index.candidates(examine(edits.render(flat_picture(), "webp-q50")).signature)

    assert len(found) == 8
    assert all(picture_id % 2 and measured.flat for picture_id, measured in found)


def test_two_flat_pictures_need_closer_colours_than_two_pictures_of_the_same_structure():
    # Between the two limits: a 12% copy of a black-and-white page (its grey bins fill) passes on its
    # structure; two flat pictures, whose structure says nothing, do not.
    between = (dedupe.FLAT_HISTOGRAM_RMS_THRESHOLD + dedupe.HISTOGRAM_RMS_THRESHOLD) / 2
    far = dedupe.STRUCTURE_DISTANCE_THRESHOLD + 40
    assert dedupe.Distances(between, 40, 0.1).passes_filter()
    assert not dedupe.Distances(between, far, 0.1, flat=True).passes_filter()
    assert dedupe.Distances(dedupe.FLAT_HISTOGRAM_RMS_THRESHOLD - 0.01, far, 0.1, flat=True).passes_filter()
    assert not dedupe.Distances(0.0, far, 0.1).passes_filter()


def test_the_flat_rows_colour_prefilter_keeps_exactly_the_rows_within_the_colour_limit():
    # Flat rows whose colours sit just inside and just outside the limit, their structure hashes
    # far from the candidate's: only the colour prefilter can bring them in, and the exact colour
    # measure decides (the prefilter's algebra and margin must not lose or add a row).
    rng = np.random.default_rng(18)
    colours = 3 * dedupe.COLOUR_BINS
    base = rng.dirichlet(np.ones(dedupe.COLOUR_BINS), size=3).reshape(colours).astype(np.float32)
    directions = rng.normal(size=(400, colours)).astype(np.float32)
    directions /= np.sqrt((directions**2).mean(axis=1, keepdims=True))  # RMS 1
    rms = rng.uniform(0.9, 1.1, size=(400, 1)).astype(np.float32) * dedupe.FLAT_HISTOGRAM_RMS_THRESHOLD
    vectors = np.full((400, HISTOGRAM_LENGTH), np.nan, dtype=np.float32)
    vectors[:, :colours] = base + directions * rms
    vectors[:, colours + dedupe.FLAT_SCALE] = dedupe.FLAT_DETAIL_MAX - 0.5
    probe = vectors[0].copy()
    probe[:colours] = base
    far, near = bytes(32).hex(), bytes([255] * 32).hex()  # 256 bits apart
    rows = [(i, v.tobytes(), far) for i, v in enumerate(vectors)]
    expected = {
        i
        for i, d in enumerate(dedupe._colour_distances(vectors[:, :colours], base))
        if d <= dedupe.FLAT_HISTOGRAM_RMS_THRESHOLD
    }
    assert 100 < len(expected) < 300

    loaded = SignatureIndex.from_rows(rows)
    grown = SignatureIndex(capacity=16)
    for i, v in enumerate(vectors):
        grown.add(i, Signature(v.tobytes(), far))

    for index in (loaded, grown):
        found = index.candidates(Signature(probe.tobytes(), near), limit=1000)
        assert {picture_id for picture_id, _ in found} == expected


@pytest.mark.parametrize("block", [16, 4096])
def test_the_filter_returns_the_closest_in_colour_first_ties_by_row_across_blocks(block):
    # 300 rows that all pass the filter, a third of them tied with another: the answer must be what
    # sorting every passing row by (colour distance, row) gives, however the rows fall into blocks.
    rng = np.random.default_rng(7)
    colours = 3 * dedupe.COLOUR_BINS
    base = rng.dirichlet(np.ones(dedupe.COLOUR_BINS), size=3).reshape(colours).astype(np.float32)
    vectors = np.full((300, HISTOGRAM_LENGTH), 3.0, dtype=np.float32)
    vectors[:, :colours] = base + rng.normal(0, 0.01, size=(300, colours)).astype(np.float32)
    vectors[200:, :colours] = vectors[100:200, :colours]  # ties
    same = bytes(32).hex()
    probe = Signature(np.concatenate([base, vectors[0, colours:]]).tobytes(), same)
    distances = dedupe._colour_distances(vectors[:, :colours], base)
    expected = sorted((float(d), row) for row, d in enumerate(distances) if d <= dedupe.HISTOGRAM_RMS_THRESHOLD)

    index = SignatureIndex.from_rows((row, v.tobytes(), same) for row, v in enumerate(vectors))
    index.BLOCK = block
    found = index.candidates(probe, limit=7)  # the 7th and 8th closest are a tie: row 142 is kept, not 242

    assert len(expected) == 300
    assert [picture_id for picture_id, _ in found] == [row for _, row in expected[:7]]


def test_an_edit_that_leaves_the_pixels_as_they_were_makes_no_different_photo():
    grey_photo = source("chelsea").convert("L").convert("RGB")  # RGB, but every pixel grey
    unchanged = edits.unchanged_edits(grey_photo, ["greyscale", "saturation+30", "blur-r1", "mirror"])
    assert unchanged == {"greyscale", "saturation+30"}
    assert edits.unchanged_edits(flat_picture(), ["blur-r1", "sharpen-soft", "mirror", "contrast+10"]) == {
        "blur-r1",
        "sharpen-soft",
    }
    assert edits.keeps_photo("blur-r1+jpeg-q70", unchanged={"blur-r1"})
    assert not edits.keeps_photo("blur-r1+jpeg-q70")


def test_the_labelled_kinds_come_from_the_catalogue():
    assert edits.changes("rotate90+brightness+30+jpeg-q70") == ["rotate90", "brightness+30"]
    assert edits.keeps_photo("resize-50+webp-q75")
    assert edits.keeps_photo("greyscale+png", greyscale=True)
    assert not edits.keeps_photo("greyscale+png")


# --- Ingest decides as same_picture does --------------------------------------------------------


def ingest(album, data: bytes, media_key: str):
    photo = Photo(media_key=media_key, url="sample://x", width=0, height=0)
    post = Post(
        id=media_key,
        permalink=f"https://x.com/ana/status/{media_key}",
        author_handle="ana",
        author_name="Ana",
        text="#sunset",
        like_count=0,
        posted_at=datetime(2026, 11, 20, tzinfo=UTC),
        sensitive=False,
        photos=(photo,),
    )
    index = load_signature_index(album=album)
    return ingest_photo(album=album, source="x", post=post, photo=photo, data=data, index=index)


@pytest.mark.parametrize(
    ("chain", "duplicate"), [("resize-25+png", True), ("webp-q50", True), ("sharpen-r2", False), ("blur-r2", False)]
)
def test_ingest_skips_exactly_what_same_picture_calls_the_same(album, chain, duplicate):
    first, second = file("chelsea", "jpeg-q85"), file("chelsea", chain)
    assert same_picture(first, second) is duplicate

    assert ingest(album, first, "3_1").kind == "added"
    outcome = ingest(album, second, "3_2")

    assert outcome.kind == ("duplicate" if duplicate else "added"), outcome.message
    assert Picture.objects.filter(album=album).count() == (1 if duplicate else 2)


@pytest.mark.parametrize("side", [640, 1600], ids=["fits-the-view", "verified-by-its-rendition"])
@pytest.mark.parametrize("camera_first", [True, False], ids=["camera-file-first", "copy-first"])
@pytest.mark.parametrize("kind", ["kept", "dropped"])
def test_ingest_skips_a_copy_of_a_file_with_a_colour_profile(album, side, camera_first, kind):
    # A stored file larger than the view is verified by its rendition (sRGB): its numbers are read back
    # from its original only after that verification failed (pictures.services.StoredPicture.numbers).
    with Image.open(BytesIO(CAMERA_FILE)) as image:
        profile = image.info["icc_profile"]
        pixels = image.convert("RGB").resize((side, round(side * image.height / image.width)), Image.Resampling.LANCZOS)
    camera = edits.encode(pixels, "JPEG", quality=92, icc_profile=profile)
    copy = platform_copy(kind, 0.5, camera)
    first, second = (camera, copy) if camera_first else (copy, camera)

    stored = ingest(album, first, "3_1").picture
    outcome = ingest(album, second, "3_2")

    assert outcome.kind == "duplicate", outcome.message
    assert stored.colour_profile == ("Adobe RGB (1998)" if camera_first or kind == "kept" else "")


def test_a_failed_verification_reads_no_original_of_a_picture_without_a_colour_profile(album, monkeypatch):
    large = source("rocket").resize((1600, 1067), Image.Resampling.LANCZOS)
    stored = ingest(album, edits.render(large, "jpeg-q85"), "3_1").picture
    read = []
    monkeypatch.setattr(services, "read_file", lambda key: read.append(key) or default_storage.open(key).read())

    assert ingest(album, edits.render(large, "blur-r2+jpeg-q85"), "3_2").kind == "added"

    assert read == [stored.renditions[dedupe.VERIFY_RENDITION]["key"]]  # verified by its rendition, nothing more


def test_ingest_reads_a_stored_pngs_original_to_confirm_a_png_of_its_size(album, monkeypatch):
    """Over the box, a stored PNG is verified by its rendition; only a match with an arriving PNG of its
    size reads its original, which then decides by the pixels (a 1% patch 5 levels darker is kept)."""
    original = LARGE_PNGS["drawing"]()
    stored = ingest(album, edits.encode(original, "PNG"), "3_1").picture
    read = []
    monkeypatch.setattr(services, "read_file", lambda key: read.append(key) or default_storage.open(key).read())
    rendition = stored.renditions[dedupe.VERIFY_RENDITION]["key"]

    assert ingest(album, edits.render(original, "jpeg-q90"), "3_2").kind == "duplicate"
    assert read == [rendition]  # a JPEG: the rendition's verification is the decision

    read.clear()
    assert ingest(album, edits.encode(_retouched(original, 0.01), "PNG"), "3_3").kind == "added"
    assert read == [rendition, stored.original_key]

    read.clear()
    outcome = ingest(album, edits.encode(original, "PNG", compress_level=1), "3_4")
    assert outcome.kind == "duplicate" and outcome.duplicate_of == stored.pk, outcome.message
    assert stored.original_key in read


def test_ingest_skips_a_re_encoded_copy_of_a_nearly_flat_picture(album):
    """The album's index is loaded from the rows, so the flat marks come from the stored signatures."""
    assert ingest(album, edits.render(flat_picture(), "original"), "3_1").kind == "added"

    outcome = ingest(album, edits.render(flat_picture(), "jpeg-q30"), "3_2")

    assert outcome.kind == "duplicate", outcome.message


def test_ingest_reads_a_stored_jpegs_own_block_means_back_from_the_storage(album):
    original = source("chelsea")
    assert ingest(album, edits.encode(original, "JPEG", quality=50), "3_1").kind == "added"

    assert ingest(album, edits.encode(_retouched(original, 0.01), "PNG"), "3_2").kind == "added"
    outcome = ingest(album, edits.encode(original, "PNG"), "3_3")
    assert outcome.kind == "duplicate", outcome.message


def test_a_stored_picture_that_fits_the_view_is_verified_by_its_own_original(album):
    """A picture no larger than the verification rendition is compared by its original's pixels (no
    second JPEG's noise on them), so its rendition is not even needed."""
    first = ingest(album, file("rocket", "original"), "3_1").picture
    default_storage.delete(first.renditions[dedupe.VERIFY_RENDITION]["key"])

    assert ingest(album, file("rocket", "jpeg-q70"), "3_2").kind == "duplicate"


def test_ingest_keeps_a_picture_it_cannot_verify(album):
    first = ingest(album, file("rocket", "original"), "3_1").picture
    default_storage.delete(first.renditions[dedupe.VERIFY_RENDITION]["key"])
    default_storage.delete(first.original_key)

    assert ingest(album, file("rocket", "jpeg-q70"), "3_2").kind == "added"


def test_a_larger_stored_picture_is_verified_against_its_rendition(album):
    large = source("rocket").resize((1600, 1067), Image.Resampling.LANCZOS)
    first = ingest(album, edits.render(large, "original"), "3_1").picture
    assert ingest(album, edits.render(large, "jpeg-q70"), "3_2").kind == "duplicate"

    default_storage.delete(first.renditions[dedupe.VERIFY_RENDITION]["key"])  # its original is not read

    assert ingest(album, edits.render(large, "jpeg-q50"), "3_3").kind == "added"


# --- The signature filter (SignatureIndex) ------------------------------------------------------


def random_signatures(count: int, seed: int = 0) -> list[Signature]:
    """Plausible but unrelated signatures: random hashes, colour histograms and detail profiles."""
    rng = np.random.default_rng(seed)
    colours = rng.dirichlet(np.ones(16), size=(count, 3)).reshape(count, 48)
    details = rng.uniform(1, 5, size=(count, HISTOGRAM_LENGTH - 48))
    vectors = np.hstack([colours, details]).astype(np.float32)
    hashes = rng.integers(0, 256, size=(count, 32), dtype=np.uint8)
    return [Signature(v.tobytes(), h.tobytes().hex()) for v, h in zip(vectors, hashes, strict=True)]


def signature(name: str, chain: str) -> Signature:
    return examined(name, chain).signature


def first_candidate(index: SignatureIndex, sig: Signature) -> int | None:
    found = index.candidates(sig)
    return found[0][0] if found else None


def test_the_filter_finds_the_stored_original_among_many():
    stored = [(name, signature(name, "original")) for name in SOURCES]
    stored += [(f"random/{i}", sig) for i, sig in enumerate(random_signatures(2000))]
    ids = {key: 1000 + i for i, (key, _) in enumerate(stored)}
    index = SignatureIndex.from_rows((ids[key], sig.histogram, sig.structure_hash) for key, sig in stored)

    assert len(index) == len(stored)
    for name in SOURCES:
        assert first_candidate(index, signature(name, "resize-50")) == ids[name], name


def test_a_picture_added_to_the_index_is_a_candidate():
    index = SignatureIndex.from_rows([])
    index.add(5, signature("chelsea", "original"))

    assert len(index) == 1
    assert first_candidate(index, signature("chelsea", "jpeg-q30")) == 5
    assert first_candidate(index, signature("chelsea", "mirror")) is None


def test_the_index_grows_past_its_initial_capacity():
    index = SignatureIndex(capacity=16)
    for picture_id, sig in enumerate(random_signatures(100), start=1):
        index.add(picture_id, sig)
    index.add(500, signature("rocket", "original"))

    assert len(index) == 101
    assert first_candidate(index, signature("rocket", "resize-25+png")) == 500


def test_an_empty_index_has_no_candidates():
    assert SignatureIndex.from_rows([]).candidates(signature("chelsea", "original")) == []


def test_rows_from_the_database_load_as_stored():
    """Database drivers may hand back a memoryview for binary columns."""
    sig = signature("chelsea", "original")
    index = SignatureIndex.from_rows([(42, memoryview(sig.histogram), sig.structure_hash)])

    assert first_candidate(index, signature("chelsea", "webp-q50")) == 42


def test_malformed_stored_rows_are_skipped_with_a_warning(caplog):
    sig = signature("chelsea", "original")
    rows = [
        (1, b"\x00" * 12, sig.structure_hash),
        (2, sig.histogram, "not hex"),
        (3, None, sig.structure_hash),
        (4, sig.histogram, sig.structure_hash),
    ]
    with caplog.at_level(logging.WARNING, logger="pictures.dedupe"):
        index = SignatureIndex.from_rows(rows)

    assert len(index) == 1
    assert first_candidate(index, sig) == 4
    assert "skipped 3 stored signatures" in caplog.text


@pytest.mark.parametrize(
    "resample",
    [Image.Resampling.LANCZOS, Image.Resampling.BICUBIC, Image.Resampling.BILINEAR, Image.Resampling.BOX],
)
def test_the_larger_picture_is_reduced_with_the_filter_the_smaller_was_made_with(resample):
    """A platform's filter is not known: verification reduces with each and keeps the closest."""
    large = source("chelsea")
    small = large.resize((large.width // 3, large.height // 3), resample)

    reduced, chosen, gain = dedupe._reduced_like(large, small)

    assert reduced.tobytes() == large.resize(small.size, resample, reducing_gap=3.0).tobytes()
    assert dedupe.REDUCING_FILTERS[chosen] == resample
    assert gain < -0.3 if resample != Image.Resampling.LANCZOS else gain == 0


def test_a_blur_is_not_reduced_away_by_a_softer_filter():
    """Only softer filters than Lanczos are tried: a picture blurred before resizing stays softer than
    a sharp copy however it is reduced, so the blur still shows (the filters do not sharpen)."""
    large = source("chelsea")
    small = large.resize((large.width // 3, large.height // 3), Image.Resampling.LANCZOS)
    blurred = edits.EDITS["blur-r2"].apply(large)

    reduced, chosen, _ = dedupe._reduced_like(blurred, small)

    assert chosen == 0
    assert reduced.tobytes() == blurred.resize(small.size, Image.Resampling.LANCZOS, reducing_gap=3.0).tobytes()


def test_a_12_megapixel_photo_and_its_400x300_resize_pass_the_filter():
    large = source("chelsea").resize((4000, 3000), Image.Resampling.BICUBIC)
    small = large.resize((400, 300), Image.Resampling.LANCZOS)

    assert dedupe.distances(compute_signature(large), compute_signature(small)).passes_filter()


def test_a_greyscale_image_not_yet_converted_to_rgb_gets_the_rgb_signature():
    grey = Image.linear_gradient("L").resize((300, 200))

    assert compute_signature(grey) == compute_signature(grey.convert("RGB"))


def test_a_signature_fits_the_picture_columns():
    sig = signature("rocket", "original")

    assert len(sig.histogram) <= Picture._meta.get_field("histogram").max_length
    assert len(sig.structure_hash) <= Picture._meta.get_field("structure_hash").max_length


def test_a_slight_blur_moves_a_12_percent_copy_less_than_the_copys_own_recompression():
    """Why the merges left are mostly edits against 12% copies (docs/dedupe.md, "What the pixels of a small
    copy can show"): there, a radius-1 blur of the original changes the copy's pixels less than the
    platform's JPEG q85 of that copy does, while at 50% a radius-3 blur stands well out of it."""
    ratios = visibility_ratios({"chelsea", "coffee", "text-page-1"})

    assert len(ratios[0.12, "blur-r1"]) == 3
    assert max(ratios[0.12, "blur-r1"]) < 0.6
    assert min(ratios[0.5, "blur-r3"]) > 1


def test_the_report_leaves_out_exactly_the_edits_smaller_than_a_copys_own_change():
    """The labelled set's report gives precision and recall without these pairs too (the product
    decision in docs/dedupe.md): an edit that moves the picture less than a platform's re-encoding or
    resizing moved one of the two."""

    def pair(a: str, b: str, *, duplicate: bool = False) -> Pair:
        return Pair(f"chelsea/{a}", f"chelsea/{b}", "a pair", duplicate, "test")

    below = [pair("resize-12", "blur-r1"), pair("blur-r1", "resize-12")]
    above = [
        pair("resize-50", "blur-r3"),  # at 50% a radius-3 blur stands out of the recompression
        pair("original", "blur-r1"),  # the original has no change of its own: any edit shows
        pair("png", "blur-r1"),
        pair("resize-12", "mirror"),
        pair("original", "greyscale+webp-q75"),  # the edit's own re-encode counts, and greyscale shows
        pair("resize-50", "sharpen-r2+resize-50"),  # both at 50%
    ]
    left_out = [pair("resize-50", "jpeg-q30", duplicate=True), pair("blur-r1", "blur-r2")]
    ratios = copy_change_ratios([*below, *above, *left_out])

    assert set(ratios) == {*below, *above}
    assert ratios[pair("original", "blur-r1")] == math.inf
    assert below_copy_change([*below, *above, *left_out]) == set(below)


def test_a_soft_copy_is_paired_only_with_larger_pictures():
    """A copy made with a softer filter than Lanczos looks blurred against a picture of its size or
    smaller: those pairs are the blur-against-copy pairs by their pixels, so they are not labelled
    (docs/dedupe.md, "Other filters")."""
    chelsea = next(s for s in sources() if s.name == "chelsea")
    pairs = {(p.a.split("/", 1)[1], p.b.split("/", 1)[1]) for p in labelled_pairs(chelsea, frozenset())}

    assert ("original", "resize-50-bilinear+jpeg-q85") in pairs
    assert ("resize-50", "resize-12-bilinear+jpeg-q85") in pairs
    assert ("resize-50", "resize-50-bilinear+jpeg-q85") not in pairs
    assert ("resize-50-bilinear+jpeg-q85", "resize-12") not in pairs
    assert ("resize-12-bicubic+jpeg-q85", "resize-12-bilinear+jpeg-q85") not in pairs
    assert all(edits.keeps_photo(chain) for chain in SOFT_COPIES)


def test_the_resizers_check_scores_copies_the_labelled_set_does_not_hold():
    report = resizers("train", {"chelsea"})

    assert "| bilinear 50% + JPEG q85 | 3 | 0 |" in report
    assert "| libvips thumbnail 12% + JPEG q85 | 3 |" in report
    assert "In all: " in report and " of 69 missed" in report
