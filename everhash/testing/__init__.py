"""Test support shared by the test suites and bench/: builders, role fixtures, loopback servers,
the catalogue of photo edits (edits.py)."""
