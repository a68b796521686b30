"""Migrations apply to an empty database, as on a new server: a fresh SQLite file, or a new
MySQL/MariaDB database on the suite's server (when the suite runs on MariaDB)."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

from everhash.testing.processes import manage, new_mariadb_database, run_python

CHECK = """
import django; django.setup()
from users.models import User
from albums.models import Album
owner = User.objects.create_user("owner@example.com", None, name="Zoë 🐈")
Album.objects.create(owner=owner, hashtag="café", title="Sunset 🌅 party")
album = Album.objects.get(hashtag="café")
print(album.title, album.owner.name)
"""


@pytest.fixture
def empty_database(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "everhash.settings", "EVERHASH_VAR_DIR": str(tmp_path)}
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.mysql":
        env["EVERHASH_SQLITE_PATH"] = str(tmp_path / "new.sqlite3")
        env.pop("DB_NAME", None)
        yield env
        return
    with new_mariadb_database(settings.DATABASES["default"]) as name:
        yield {**env, "DB_NAME": name}


def test_migrations_apply_to_an_empty_database_and_emoji_survive(empty_database):
    manage(empty_database, "migrate", "--noinput", "-v0")
    plan = manage(empty_database, "showmigrations", "--plan")
    assert "[X]" in plan and "[ ]" not in plan
    manage(empty_database, "makemigrations", "--check", "--dry-run")
    output = run_python(empty_database, CHECK)
    assert output.strip() == "Sunset 🌅 party Zoë 🐈"
