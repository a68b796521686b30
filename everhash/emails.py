"""One helper for every email: text and HTML parts from templates, one look.

Templates live in templates/emails/<name>_subject.txt, <name>_body.txt and
<name>_body.html. Data is escaped in the HTML part by the template engine; the
subject is collapsed to one line so no header can be injected through it.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def absolute_url(path_or_url: str) -> str:
    """An absolute URL for emails and share tags (storage URLs may already be absolute)."""
    if path_or_url.startswith(("https://", "http://")):
        return path_or_url
    return f"{settings.EVERHASH_SITE_URL}/{path_or_url.lstrip('/')}"


def send_email(*, to: Sequence[str], template: str, context: dict) -> None:
    """Render and send one email. Raises on SMTP failure: callers decide about retries."""
    context = {"site_url": settings.EVERHASH_SITE_URL, **context}
    subject = render_to_string(f"emails/{template}_subject.txt", context)
    subject = " ".join(subject.split())  # one line: no header injection, no stray newlines
    text = render_to_string(f"emails/{template}_body.txt", context)
    html = render_to_string(f"emails/{template}_body.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=list(to))
    message.attach_alternative(html, "text/html")
    message.send()
