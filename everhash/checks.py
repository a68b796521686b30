"""System checks: `manage.py check --deploy` tells an operator what is inconsistent."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_private_address_exception(app_configs: object, **kwargs: object) -> list[Warning]:
    if settings.EVERHASH_ALLOW_PRIVATE_ADDRESSES and not settings.DEBUG:
        return [
            Warning(
                "EVERHASH_ALLOW_PRIVATE_ADDRESSES is set with DEBUG off.",
                hint="It lets media downloads reach private addresses; it is meant for tests only. Unset it.",
                id="everhash.W001",
            )
        ]
    return []


@register(deploy=True)
def check_site_url(app_configs: object, **kwargs: object) -> list[Warning]:
    if not settings.DEBUG and not settings.EVERHASH_SITE_URL.startswith("https://"):
        return [
            Warning(
                f"EVERHASH_SITE_URL is {settings.EVERHASH_SITE_URL!r}.",
                hint="Set it to the site's public https:// address: emails and share links use it.",
                id="everhash.W002",
            )
        ]
    return []


@register()
def check_fetch_settings(app_configs: object, **kwargs: object) -> list[Error]:
    """Settings that would only fail later, in the middle of a cron run."""
    import ipaddress

    errors = []
    for entry in settings.EVERHASH_ALLOW_PRIVATE_ADDRESSES:
        try:
            ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            errors.append(
                Error(
                    f"EVERHASH_ALLOW_PRIVATE_ADDRESSES has an entry that is not an address or network: {entry!r}.",
                    hint=str(exc),
                    id="everhash.E001",
                )
            )
    if not settings.EVERHASH_X_API_URL.startswith("https://"):
        errors.append(
            Error(
                f"EVERHASH_X_API_URL must be an https:// URL, not {settings.EVERHASH_X_API_URL!r}.",
                id="everhash.E002",
            )
        )
    if settings.EVERHASH_CA_BUNDLE and not Path(settings.EVERHASH_CA_BUNDLE).is_file():
        errors.append(
            Error(f"EVERHASH_CA_BUNDLE names {settings.EVERHASH_CA_BUNDLE!r}, which is not a file.", id="everhash.E003")
        )
    return errors
