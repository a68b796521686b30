from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from albums.hashtags import normalize_hashtag


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sunset", "sunset"),
        ("#Sunset", "sunset"),
        ("SUNSET", "sunset"),
        ("  #sunset  ", "sunset"),
        ("DjangoCon2026", "djangocon2026"),
        ("_under_score_", "_under_score_"),
        ("#Straße", "strasse"),  # case-folded, so STRASSE and Straße are one album
        ("Ünïcödé", "ünïcödé"),
        ("日本", "日本"),
        ("हिन्दी", "हिन्दी"),  # letters with combining marks
        ("ｓｕｎｓｅｔ", "sunset"),  # full-width letters, NFKC
        ("a" * 100, "a" * 100),
        ("2026x", "2026x"),
    ],
)
def test_it_normalises_good_hashtags(raw, expected):
    assert normalize_hashtag(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Enter a hashtag"),
        ("#", "Enter a hashtag"),
        ("   ", "Enter a hashtag"),
        ("sun set", "cannot contain spaces"),
        ("sun\tset", "cannot contain spaces"),
        ("<script>", "only contain letters, digits and underscores"),
        ("sun-set", "only contain letters, digits and underscores"),
        ("##sunset", "only contain letters, digits and underscores"),
        ("sun.set", "only contain letters, digits and underscores"),
        ("tag🌅", "only contain letters, digits and underscores"),
        ("a" * 101, "at most 100 characters"),
        ("2026", "at least one letter"),
    ],
)
def test_it_rejects_bad_hashtags_with_a_clear_message(raw, message):
    with pytest.raises(ValidationError) as info:
        normalize_hashtag(raw)
    assert message in info.value.messages[0]
