"""Typed readers for settings that come from the environment.

Each helper fails loudly on a malformed value: a typo in production must stop
the process at start-up with a message naming the variable, not run with a
silently different configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    """A comma-separated list; surrounding spaces and empty items are dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int_list(name: str, default: list[int]) -> list[int]:
    items = env_list(name, [str(i) for i in default])
    try:
        return [int(item) for item in items]
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be a comma-separated list of whole numbers, not {os.environ[name]!r}."
        ) from None


def env_secret(name: str, default: str = "") -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Docker/systemd credentials)."""
    path = os.environ.get(f"{name}_FILE", "").strip()
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE names {path!r}, which cannot be read: {exc}") from None
    return os.environ.get(name, default).strip()


def env_secret_pairs(name: str) -> dict[str, str]:
    """`key=value` pairs, separated by commas or new lines, from NAME or the file named by NAME_FILE.

    Keys are lowercased (they are host names). A malformed pair stops start-up with a message
    that names the variable but never shows the value (it holds secrets).
    """
    pairs: dict[str, str] = {}
    for number, item in enumerate(env_secret(name).replace("\n", ",").split(","), start=1):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ImproperlyConfigured(f"{name}: item {number} is not of the form host=token.")
        pairs[key.strip().lower()] = value.strip()
    return pairs
