"""Migrations apply to an empty database, as on a new server: a fresh SQLite file, or a new
MySQL/MariaDB database on the suite's server (when the suite runs on MariaDB)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import django; django.setup()
from users.models import User
from albums.models import Album
owner = User.objects.create_user("owner@example.com", None, name="Zoë 🐈")
Album.objects.create(owner=owner, hashtag="café", title="Sunset 🌅 party")
album = Album.objects.get(hashtag="café")
print(album.title, album.owner.name)
"""


def manage(env: dict, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=300
    ).stdout


@pytest.fixture
def empty_database(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "everhash.settings", "EVERHASH_VAR_DIR": str(tmp_path)}
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.mysql":
        env["EVERHASH_SQLITE_PATH"] = str(tmp_path / "new.sqlite3")
        env.pop("DB_NAME", None)
        yield env
        return
    import MySQLdb

    name = f"everhash_new_{secrets.token_hex(4)}"
    db = settings.DATABASES["default"]
    connect = {"user": db["USER"], "password": db["PASSWORD"], "charset": "utf8mb4"}
    if db["HOST"].startswith("/"):
        connect["unix_socket"] = db["HOST"]
    else:
        connect.update(host=db["HOST"], port=int(db["PORT"] or 3306))
    server = MySQLdb.connect(**connect)
    # As docs/deploy.rst tells an operator to create it.
    server.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield {**env, "DB_NAME": name}
    finally:
        server.cursor().execute(f"DROP DATABASE {name}")
        server.close()


def test_migrations_apply_to_an_empty_database_and_emoji_survive(empty_database):
    manage(empty_database, "migrate", "--noinput", "-v0")
    plan = manage(empty_database, "showmigrations", "--plan")
    assert "[X]" in plan and "[ ]" not in plan
    manage(empty_database, "makemigrations", "--check", "--dry-run")
    output = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, env=empty_database, check=True, capture_output=True, text=True
    ).stdout
    assert output.strip() == "Sunset 🌅 party Zoë 🐈"
