"""Production serving for real: gunicorn with our config, DEBUG off, whitenoise, headers, JSON logs.

One gunicorn process on a loopback port, after `migrate` and `collectstatic`, as
docs/deploy.rst tells an operator to run it. Requests go over plain HTTP with
X-Forwarded-Proto, as they would arrive from nginx terminating TLS.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from everhash.testing.processes import Gunicorn, manage, production_environment, wait_for


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


# What nginx adds when it terminates TLS (docs/deploy.rst).
HTTPS = {"X-Forwarded-Proto": "https"}


def get(url: str, **headers: str):
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    # SQLite: this test is about serving, not the database.
    env = {**production_environment(tmp), "GUNICORN_WORKERS": "1"}
    manage(env, "migrate", "-v0")
    manage(env, "collectstatic", "--noinput", "-v0")
    log = tmp / "gunicorn.log"
    config = ["-c", "python:everhash.gunicorn_conf"]
    with Gunicorn(env, config, log=log, bind_variable="GUNICORN_BIND") as gunicorn:
        yield gunicorn.url, log


def test_plain_http_is_redirected_to_https_but_the_health_probe_is_not(server):
    base, _ = server
    status, headers, _ = get(f"{base}/")
    assert status == 301
    assert headers["Location"] == f"https://{base.removeprefix('http://')}/"
    status, headers, body = get(f"{base}/healthz")
    assert status == 200
    assert headers["Cache-Control"].startswith("max-age=0")
    report = json.loads(body)
    assert report == {"status": "ok", "checks": {"database": "ok", "storage": "ok", "fetch": "ok", "web": "ok"}}


def test_pages_carry_the_security_headers(server):
    base, _ = server
    status, headers, body = get(f"{base}/", **HTTPS)
    assert status == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "object-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    status, headers, _ = get(f"{base}/accounts/login/", **HTTPS)
    cookie = headers["Set-Cookie"]
    assert "csrftoken=" in cookie
    assert "Secure" in cookie
    assert "SameSite=Lax" in cookie


def test_static_files_are_served_hashed_compressed_and_cached_for_a_year(server):
    base, _ = server
    _, _, body = get(f"{base}/", **HTTPS)
    stylesheet = re.search(rb'href="(/static/css/site\.[0-9a-f]{12}\.css)"', body)
    assert stylesheet, body[:2000]
    status, headers, css = get(base + stylesheet.group(1).decode(), **HTTPS, **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert "immutable" in headers["Cache-Control"]
    assert "max-age=315360000" in headers["Cache-Control"]
    assert headers["Content-Type"].startswith("text/css")
    # The unhashed name still works (an old page in a cache), with a short lifetime.
    status, headers, _ = get(f"{base}/static/css/site.css", **HTTPS)
    assert status == 200
    assert "immutable" not in headers.get("Cache-Control", "")


def test_the_api_docs_load_without_inline_script(server):
    base, _ = server
    status, headers, body = get(f"{base}/api/v1/docs/", **HTTPS)
    assert status == 200
    assert b"<script>" not in body
    script = re.search(rb'<script src="([^"]*\?script=[^"]*)"', body)
    assert script, body
    status, headers, _ = get(base + script.group(1).decode().replace("&amp;", "&"), **HTTPS)
    assert status == 200
    assert "javascript" in headers["Content-Type"]


def test_logs_are_json_lines(server):
    base, log = server
    get(f"{base}/healthz")
    # Gunicorn writes its access line after the response has gone.
    wait_for(lambda: "/healthz" in log.read_text(), timeout=10, what=log.read_text)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line parses
    access = [e for e in entries if e["logger"] == "gunicorn.access"]
    probe = [e for e in access if e["path"] == "/healthz"]
    assert probe
    assert probe[-1]["status"] == "200"
    assert probe[-1]["method"] == "GET"
    assert '"GET /healthz HTTP/1.1" 200' in probe[-1]["message"]
    assert {"time", "level", "logger", "message"} <= set(entries[0])


def test_error_pages_show_no_internals(server):
    base, _ = server
    status, _, body = get(f"{base}/no-such-page/", **HTTPS)
    assert status == 404
    assert b"This page does not exist" in body
    assert b"URLconf" not in body and b"<URLPattern" not in body and b"admin/" not in body
    status, _, body = get(f"{base}/", **HTTPS, Host="evil.example.com")
    assert status == 400
    assert b"Bad request" in body and b"evil.example.com" not in body
