"""The Content-Security-Policy: its header, and a real browser refusing an injected inline script."""

from __future__ import annotations

from everhash.testing.builders import make_album


def test_every_page_carries_the_policy(client, album):
    for url in ("/", f"/album/{album.hashtag}/", "/api/v1/ping/", "/accounts/login/", "/healthz"):
        policy = client.get(url)["Content-Security-Policy"]
        assert "default-src 'self'" in policy
        assert "script-src 'self';" in policy
        assert "object-src 'none'" in policy


def test_images_from_a_cdn_domain_are_allowed(settings, client, db):
    settings.MEDIA_URL = "https://media.example.net/m/"
    policy = client.get("/")["Content-Security-Policy"]
    assert "img-src 'self' data: blob: https://media.example.net;" in policy


def test_the_browser_refuses_an_injected_inline_script(browser, live_server, owner, csp_violations):
    album = make_album(owner=owner, hashtag="csp")
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live_server.url}/album/{album.hashtag}/")
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.appendChild(script);
        }"""
    )
    page.wait_for_timeout(100)
    assert page.evaluate("window.injected === undefined")
    context.close()
    assert any("inline script" in message for message in csp_violations), csp_violations
    csp_violations.clear()
