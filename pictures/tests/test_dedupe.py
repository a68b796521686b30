"""Duplicate detection: the labelled set of docs/dedupe.md (built by bench/dedupe_eval.py), and the
album's signature index."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from bench.dedupe_eval import FILTERS, PHOTOS_DIR, REENCODES, RESIZES, LabelledSet, Pair, build_labelled_set
from pictures.dedupe import (
    HISTOGRAM_LENGTH,
    Signature,
    SignatureIndex,
    compute_signature,
    distances,
)
from pictures.models import Picture

Signatures = dict[str, Signature]


@pytest.fixture(scope="module")
def labelled() -> tuple[LabelledSet, Signatures]:
    """The labelled set and every image's signature, computed once for this module."""
    labelled = build_labelled_set()
    return labelled, {key: compute_signature(image) for key, image in labelled.images.items()}


def found_as_duplicate(signatures: Signatures, pair: Pair) -> bool:
    """Stores pair.a in an album index, then asks the index about pair.b."""
    stored = signatures[pair.a]
    index = SignatureIndex.from_rows([(7, stored.histogram, stored.structure_hash)])
    return index.find_duplicate(signatures[pair.b]) == 7


def assert_called(labelled: tuple[LabelledSet, Signatures], kind: str, *, duplicate: bool) -> None:
    pairs, signatures = labelled[0].pairs, labelled[1]
    chosen = [p for p in pairs if p.kind == kind and p.duplicate == duplicate]
    assert chosen, f"no {'duplicate' if duplicate else 'distinct'} pairs of kind {kind!r}"
    wrong = [
        f"{p.a} vs {p.b}: {distances(signatures[p.a], signatures[p.b])}"
        for p in chosen
        if found_as_duplicate(signatures, p) != duplicate
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("kind", REENCODES)
def test_a_reencoded_copy_is_a_duplicate(labelled, kind):
    assert_called(labelled, kind, duplicate=True)


@pytest.mark.parametrize("kind", RESIZES)
def test_a_resized_copy_is_a_duplicate(labelled, kind):
    assert_called(labelled, kind, duplicate=True)


@pytest.mark.parametrize("kind", ["png-to-jpeg", "jpeg-to-png"])
def test_a_copy_converted_between_png_and_jpeg_is_a_duplicate(labelled, kind):
    assert_called(labelled, kind, duplicate=True)


@pytest.mark.parametrize("kind", FILTERS)
def test_a_filtered_copy_is_not_a_duplicate(labelled, kind):
    assert_called(labelled, kind, duplicate=False)


def test_a_mirror_image_is_not_a_duplicate(labelled):
    assert_called(labelled, "mirror", duplicate=False)


def test_a_rotated_copy_is_not_a_duplicate(labelled):
    assert_called(labelled, "rotate-90", duplicate=False)


@pytest.mark.parametrize("kind", ["crop-centre-80", "crop-corner-80"])
def test_a_cropped_copy_is_not_a_duplicate(labelled, kind):
    assert_called(labelled, kind, duplicate=False)


@pytest.mark.parametrize(
    "kind",
    [
        "mirror+sepia",
        "crop-centre-80+greyscale",
        "rotate-90+brightness+30",
        "sepia vs mirror+sepia",
        "mirror vs mirror+sepia",
        "greyscale vs crop-centre-80+greyscale",
        "crop-centre-80 vs crop-centre-80+greyscale",
        "brightness+30 vs rotate-90+brightness+30",
        "rotate-90 vs rotate-90+brightness+30",
        "crop-centre-80 vs crop-corner-80",
        "mirror vs rotate-90",
        "greyscale vs sepia",
        "blur-r3 vs sharpen",
    ],
)
def test_two_different_edits_of_a_photo_are_not_duplicates(labelled, kind):
    assert_called(labelled, kind, duplicate=False)


@pytest.mark.parametrize(
    "kind",
    [
        "sepia vs sepia+jpeg-q70",
        "mirror vs mirror+resize-50",
        "crop-centre-80 vs crop-centre-80+jpeg-q80",
        "greyscale vs greyscale+jpeg-q60",
        "blur-r3 vs blur-r3+jpeg-q80",
        "sharpen vs sharpen+resize-50",
    ],
)
def test_an_edited_copy_reencoded_is_a_duplicate_of_that_edited_copy(labelled, kind):
    assert_called(labelled, kind, duplicate=True)


def test_another_photo_is_not_a_duplicate(labelled):
    assert_called(labelled, "another photo", duplicate=False)


def test_greyscale_changes_nothing_on_a_greyscale_photo(labelled):
    assert_called(labelled, "greyscale of a greyscale photo", duplicate=True)
    assert_called(labelled, "crop-centre-80 vs crop-centre-80+greyscale", duplicate=True)


def test_every_labelled_pair_is_called_as_labelled(labelled):
    pairs, signatures = labelled[0].pairs, labelled[1]
    assert len(pairs) > 400
    wrong = [p for p in pairs if distances(signatures[p.a], signatures[p.b]).is_duplicate() != p.duplicate]
    assert not wrong


def random_signatures(count: int, seed: int = 0) -> list[Signature]:
    """Plausible but unrelated signatures: random hashes, colour histograms and detail profiles."""
    rng = np.random.default_rng(seed)
    colours = rng.dirichlet(np.ones(16), size=(count, 3)).reshape(count, 48)
    details = rng.uniform(1, 5, size=(count, HISTOGRAM_LENGTH - 48))
    vectors = np.hstack([colours, details]).astype(np.float32)
    hashes = rng.integers(0, 256, size=(count, 32), dtype=np.uint8)
    return [Signature(v.tobytes(), h.tobytes().hex()) for v, h in zip(vectors, hashes, strict=True)]


def test_the_index_returns_the_id_of_the_duplicate_among_many(labelled):
    labelled_set, signatures = labelled
    stored = [(key, sig) for key, sig in signatures.items() if key.endswith("/original")]
    # Every different picture of the set, plus unrelated ones, so that each query has many neighbours.
    distinct = {p.b for p in labelled_set.pairs if p.a.endswith("/original") and not p.duplicate}
    stored += [(key, signatures[key]) for key in sorted(distinct)]
    stored += [(f"random/{i}", sig) for i, sig in enumerate(random_signatures(2000))]
    ids = {key: 1000 + i for i, (key, _) in enumerate(stored)}
    index = SignatureIndex.from_rows((ids[key], sig.histogram, sig.structure_hash) for key, sig in stored)

    assert len(index) == len(stored)
    for photo in {key.split("/")[0] for key in labelled_set.images}:
        assert index.find_duplicate(signatures[f"{photo}/resize-50"]) == ids[f"{photo}/original"], photo


def test_a_picture_added_to_the_index_is_found(labelled):
    signatures = labelled[1]
    index = SignatureIndex.from_rows([])
    index.add(5, signatures["coffee/original"])

    assert len(index) == 1
    assert index.find_duplicate(signatures["coffee/jpeg-q80"]) == 5
    assert index.find_duplicate(signatures["coffee/mirror"]) is None


def test_the_index_grows_past_its_initial_capacity(labelled):
    signatures = labelled[1]
    index = SignatureIndex(capacity=16)
    for picture_id, signature in enumerate(random_signatures(100), start=1):
        index.add(picture_id, signature)
    index.add(500, signatures["rocket/original"])

    assert len(index) == 101
    assert index.find_duplicate(signatures["rocket/resize-25"]) == 500


def test_an_empty_index_finds_nothing(labelled):
    index = SignatureIndex.from_rows([])

    assert len(index) == 0
    assert index.find_duplicate(labelled[1]["astronaut/original"]) is None


def test_rows_from_the_database_load_as_stored(labelled):
    """Database drivers may hand back a memoryview for binary columns."""
    signature = labelled[1]["chelsea/original"]
    index = SignatureIndex.from_rows([(42, memoryview(signature.histogram), signature.structure_hash)])

    assert index.find_duplicate(labelled[1]["chelsea/jpeg-q60"]) == 42


def test_malformed_stored_rows_are_skipped_with_a_warning(labelled, caplog):
    signature = labelled[1]["chelsea/original"]
    rows = [
        (1, b"\x00" * 12, signature.structure_hash),
        (2, signature.histogram, "not hex"),
        (3, None, signature.structure_hash),
        (4, signature.histogram, signature.structure_hash),
    ]
    with caplog.at_level(logging.WARNING, logger="pictures.dedupe"):
        index = SignatureIndex.from_rows(rows)

    assert len(index) == 1
    assert index.find_duplicate(signature) == 4
    assert "skipped 3 stored signatures" in caplog.text


def test_a_12_megapixel_photo_and_its_400x300_resize_match():
    with Image.open(PHOTOS_DIR / "astronaut.png") as source:
        large = source.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    small = large.resize((400, 300), Image.Resampling.LANCZOS)

    assert distances(compute_signature(large), compute_signature(small)).is_duplicate()


def test_a_greyscale_image_not_yet_converted_to_rgb_gets_the_rgb_signature():
    grey = Image.linear_gradient("L").resize((300, 200))

    assert compute_signature(grey) == compute_signature(grey.convert("RGB"))


def test_a_signature_fits_the_picture_columns(labelled):
    signature = labelled[1]["retina/original"]

    assert len(signature.histogram) <= Picture._meta.get_field("histogram").max_length
    assert len(signature.structure_hash) <= Picture._meta.get_field("structure_hash").max_length
