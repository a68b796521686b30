"""Behind the documented proxy: real nginx (Debian's nginx-light) in front of real gunicorn.

Clients connect from different loopback addresses (127.0.0.2, 127.0.0.3...), so nginx sees each
one's own address; gunicorn only ever sees nginx (127.0.0.1). nginx's proxy headers are the ones
docs/deploy.rst gives an operator, read from that file.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from everhash.testing.processes import (
    Gunicorn,
    Service,
    free_port,
    http_get,
    inside_one_window,
    manage,
    production_environment,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def documented_proxy_headers() -> list[str]:
    """The proxy_set_header lines of the site's `location /` in docs/deploy.rst."""
    text = (ROOT / "docs" / "deploy.rst").read_text()
    block = text[text.index("        location / {\n") :]
    block = block[: block.index("}")]
    lines = [line.strip() for line in block.splitlines() if line.strip().startswith("proxy_set_header")]
    assert any("X-Forwarded-For $proxy_add_x_forwarded_for" in line for line in lines), lines
    return lines


def nginx_config(tmp: Path, *, port: int, upstream: int) -> str:
    headers = "\n            ".join(documented_proxy_headers())
    return f"""
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream everhash {{ server 127.0.0.1:{upstream} fail_timeout=0; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://everhash;
            {headers}
            proxy_redirect off;
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: apt-get install nginx-light (TEST_PACKAGES in the Makefile)")
    tmp = tmp_path_factory.mktemp("proxy")
    env = {
        **production_environment(tmp),
        "GUNICORN_WORKERS": "1",
        "EVERHASH_TRUSTED_PROXIES": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP from nginx to the test's clients
        "EVERHASH_LOGIN_LIMIT_PER_ADDRESS": "3",
        "EVERHASH_LOGIN_LIMIT_PER_EMAIL": "1000",
        "EVERHASH_API_ANON_RATE": "3/min",
    }
    manage(env, "migrate", "-v0")
    manage(env, "collectstatic", "--noinput", "-v0")
    manage(
        env,
        "shell",
        "-c",
        "from users.models import User; User.objects.create_user('owner@example.com', 'owner-password')",
    )
    log = tmp / "gunicorn.log"
    with Gunicorn(env, ["-c", "python:everhash.gunicorn_conf"], log=log, bind_variable="GUNICORN_BIND") as app:
        port = free_port()
        config = tmp / "nginx.conf"
        config.write_text(nginx_config(tmp, port=port, upstream=app.port))
        with Service("nginx", [NGINX, "-c", str(config), "-p", str(tmp)], env=env, log=tmp / "nginx.log") as nginx:
            wait_for(_answers(port), timeout=30, what=nginx.text)
            yield {"proxy": port, "app": app.port, "log": log}


def _answers(port: int):
    def answered() -> bool:
        try:
            http_get(port, "/healthz")
        except OSError:
            return False
        return True

    return answered


def request(port: int, method: str, path: str, *, source: str, body: dict | None = None, **headers: str):
    """One request to 127.0.0.1:port from the loopback address `source`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    data = urlencode(body).encode() if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    content = response.read()
    connection.close()
    return response.status, response, content.decode()


def sign_in(port: int, *, source: str, password: str, **headers: str) -> int:
    """The sign-in form as a browser fills it (CSRF cookie and token); the POST's status."""
    _, response, page = request(port, "GET", "/accounts/login/", source=source, **headers)
    cookie = SimpleCookie(response.getheader("Set-Cookie"))["csrftoken"].value
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = {"csrfmiddlewaretoken": token, "username": "owner@example.com", "password": password}
    status, _, _ = request(
        port, "POST", "/accounts/login/", source=source, body=form, Cookie=f"csrftoken={cookie}", **headers
    )
    return status


def test_behind_nginx_each_client_has_its_own_sign_in_limit_and_a_forged_header_changes_nothing(site):
    proxy = site["proxy"]
    inside_one_window(900)  # the sign-in limit's window
    for attempt in range(3):
        # Each time a new forged address: it must not open a new allowance.
        assert (
            sign_in(proxy, source="127.0.0.2", password="guess", **{"X-Forwarded-For": f"198.51.100.{attempt}"}) == 200
        )
    assert sign_in(proxy, source="127.0.0.2", password="guess", **{"X-Forwarded-For": "198.51.100.99"}) == 429
    # Someone else behind the same nginx is not held back by 127.0.0.2's guesses.
    assert sign_in(proxy, source="127.0.0.3", password="owner-password") == 302


def test_without_a_trusted_peer_the_forwarded_header_is_ignored(site):
    app = site["app"]  # straight to gunicorn from 127.0.0.4, which is not a trusted proxy
    inside_one_window(900)
    for attempt in range(3):
        assert sign_in(app, source="127.0.0.4", password="guess", **{"X-Forwarded-For": f"203.0.113.{attempt}"}) == 200
    assert sign_in(app, source="127.0.0.4", password="guess", **{"X-Forwarded-For": "127.0.0.5"}) == 429


def test_behind_nginx_api_throttles_count_per_client(site):
    proxy = site["proxy"]
    inside_one_window(60)  # the API throttle's minute
    statuses = [request(proxy, "GET", "/api/v1/albums/", source="127.0.0.6")[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert request(proxy, "GET", "/api/v1/albums/", source="127.0.0.7")[0] == 200


def test_the_access_log_names_the_client_and_the_proxy(site):
    request(site["proxy"], "GET", "/healthz?from=seven", source="127.0.0.7")
    # Gunicorn writes its access line after the response has gone.
    wait_for(lambda: "from=seven" in site["log"].read_text(), timeout=10, what=site["log"].read_text)
    entries = [json.loads(line) for line in site["log"].read_text().splitlines() if line.startswith("{")]
    [entry] = [e for e in entries if e["logger"] == "gunicorn.access" and "from=seven" in e["message"]]
    assert (entry["client"], entry["remote"]) == ("127.0.0.7", "127.0.0.1")
