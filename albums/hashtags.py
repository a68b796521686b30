"""Hashtag normalisation: one album per hashtag, however it is typed.

`#Sunset`, `sunset` and `SUNSET` are the same album. A stored hashtag has no
`#`, is case-folded (NFKC, then str.casefold), and holds only Unicode letters
(with their combining marks), digits and underscores, at most 100 characters,
with at least one letter or underscore (X does not link a hashtag of digits only).
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

MAX_LENGTH = 100

# Words the site's album URLs use for pages of their own (`/album/add/` is the add page, not the
# album #add): never a new album's hashtag, whether it comes from the form, the API or the admin.
# albums/tests/test_hashtags.py checks every literal `album/<word>/` route is listed here.
RESERVED = frozenset({"add"})


def _allowed(char: str) -> bool:
    category = unicodedata.category(char)
    return char == "_" or category[0] in ("L", "M") or category == "Nd"


def normalize_hashtag(raw: str) -> str:
    """Return the canonical form of a hashtag or raise ValidationError saying why not."""
    if raw is None:
        raise ValidationError("Enter a hashtag.", code="empty")
    tag = unicodedata.normalize("NFKC", str(raw)).strip()
    if tag.startswith("#"):
        tag = tag[1:]
    if not tag:
        raise ValidationError("Enter a hashtag, for example #sunset.", code="empty")
    tag = tag.casefold()
    if any(char.isspace() for char in tag):
        raise ValidationError("A hashtag is one word: it cannot contain spaces.", code="spaces")
    bad = sorted({char for char in tag if not _allowed(char)})
    if bad:
        shown = " ".join(bad[:5])
        raise ValidationError(
            "A hashtag can only contain letters, digits and underscores (not %(chars)s).",
            code="characters",
            params={"chars": shown},
        )
    if len(tag) > MAX_LENGTH:
        raise ValidationError(
            "A hashtag can be at most %(max)d characters long (this one has %(length)d).",
            code="too_long",
            params={"max": MAX_LENGTH, "length": len(tag)},
        )
    if all(unicodedata.category(char) == "Nd" for char in tag):
        raise ValidationError("A hashtag needs at least one letter (X does not link #123).", code="digits")
    return tag


def hashtag_as_written(raw: str) -> str:
    """The hashtag as people write it (NFKC, no `#`, case kept), after checking it is a valid one.

    Searches use this form: case folding changes some hashtags (`#Straße` folds to `strasse`,
    `#İstanbul` to `i̇stanbul`), while albums are matched on `normalize_hashtag`'s folded key.
    """
    normalize_hashtag(raw)  # raises ValidationError for what is not a hashtag
    tag = unicodedata.normalize("NFKC", str(raw)).strip()
    return tag[1:] if tag.startswith("#") else tag


def normalize_new_hashtag(raw: str) -> str:
    """normalize_hashtag for a hashtag an album is about to get: reserved words are refused too."""
    tag = normalize_hashtag(raw)
    if tag in RESERVED:
        raise ValidationError(
            "#%(tag)s is a word the site uses for its own pages: choose another hashtag.",
            code="reserved",
            params={"tag": tag},
        )
    return tag
