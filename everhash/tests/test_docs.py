"""The deployment docs and .env.example name every variable the code reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READERS = re.compile(
    r"""(?:env_str|env_bool|env_int|env_int_list|env_list|env_secret|env_secret_pairs|os\.environ\.get)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
)


def variables() -> set[str]:
    found = set()
    for path in (ROOT / "everhash" / "settings.py", ROOT / "everhash" / "gunicorn_conf.py"):
        found |= set(READERS.findall(path.read_text()))
    return found


def test_the_code_reads_the_variables_we_think():
    names = variables()
    assert {"SECRET_KEY", "DB_NAME", "EVERHASH_S3_BUCKET", "CELERY_BROKER_URL", "GUNICORN_WORKERS"} <= names


def test_deploy_docs_list_every_variable():
    table = (ROOT / "docs" / "deploy.rst").read_text()
    missing = sorted(name for name in variables() if f"``{name}``" not in table)
    assert not missing, f"docs/deploy.rst does not describe: {missing}"


def test_env_example_lists_every_variable():
    example = (ROOT / ".env.example").read_text()
    missing = sorted(name for name in variables() if not re.search(rf"^#? ?{name}=", example, re.MULTILINE))
    assert not missing, f".env.example does not list: {missing}"
