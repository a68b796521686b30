"""System checks: `manage.py check --deploy` tells an operator what is inconsistent."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


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
