"""CSV that a spreadsheet opens as data, never as formulas (OWASP, "CSV Injection").

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is taken by Excel,
LibreOffice and Google Sheets for a formula (`=HYPERLINK(...)`, `@SUM(...)`, DDE). Post text,
author names and alt texts come from strangers, so each such cell is prefixed with a single
quote, which spreadsheets show as text, and every cell is quoted, so an embedded separator or
quote cannot start a new cell. The fullwidth forms of those characters are treated the same
(some spreadsheets fold them). Numbers we write ourselves are left alone.
"""

from __future__ import annotations

import csv
from typing import IO, Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise(value: Any) -> Any:
    """The cell as a spreadsheet should show it: text that could start a formula gets a leading '."""
    if isinstance(value, str) and value.startswith(TRIGGERS):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer with every cell quoted and every text cell neutralised."""

    def __init__(self, stream: IO[str]) -> None:
        self._writer = csv.writer(stream, quoting=csv.QUOTE_ALL)

    def writerow(self, row: list[Any]) -> None:
        self._writer.writerow([neutralise(cell) for cell in row])
