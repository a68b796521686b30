"""Fixtures for the media storage tests: moto's S3 server on loopback."""

from __future__ import annotations

import pytest

from pictures.tests.s3_server import S3Server


def use_s3(settings, server: S3Server, **env: str) -> None:
    """Point default_storage at the server the way everhash/settings.py does from the environment."""
    values = server.django_settings(**env)
    default = values.pop("STORAGES_DEFAULT")
    for name, value in values.items():
        setattr(settings, name, value)
    settings.STORAGES = {**settings.STORAGES, "default": default}  # last: default_storage is rebuilt


@pytest.fixture
def s3(settings):
    """moto's S3 on 127.0.0.1 with a fresh bucket; default_storage is S3Storage on it."""
    with S3Server() as server:
        use_s3(settings, server)
        yield server
