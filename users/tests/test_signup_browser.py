"""The sign-up flow in a real browser, with the activation email read from a real SMTP server."""

from __future__ import annotations

import re

from albums.models import Album
from users.models import User

PASSWORD = "a-long-Passphrase-42"


def test_a_newcomer_signs_up_activates_signs_in_and_adds_an_album(browser, live_server, smtp_server, settings, shots):
    settings.EVERHASH_SITE_URL = live_server.url
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Email").fill("browser.user@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.screenshot(path=shots / "signup-phone.jpg")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/accounts/register/complete/")
    assert "Check your email" in page.content()

    [message] = smtp_server.messages
    text = message.get_body(("plain",)).get_content()
    [link] = re.findall(r"https?://\S+/accounts/activate/\S+", text)
    page.goto(link)
    page.get_by_role("button", name="Activate my account").click()
    page.wait_for_url("**/accounts/activate/complete/")
    assert User.objects.get(email="browser.user@example.com").is_active

    page.locator("main").get_by_role("link", name="Sign in").click()
    page.get_by_label("Email").fill("browser.user@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/accounts/albums/")

    page.get_by_role("link", name="New album").first.click()
    page.get_by_label("Hashtag").fill("#BrowserParty")
    page.get_by_role("button", name="Next").click()
    # The confirmation keeps the hashtag as written, which X is searched for.
    page.wait_for_url(re.compile(r"/album/add/browserparty/\?as=%23BrowserParty$"))
    page.get_by_role("button", name="Create #browserparty").click()
    page.wait_for_url("**/accounts/albums/")
    assert "Created #browserparty" in page.content()
    page.screenshot(path=shots / "dashboard-phone.jpg", full_page=True)
    assert page.locator(".dashboard h2").first.inner_text() == "#browserparty"
    album = Album.objects.get(hashtag="browserparty")
    assert (album.owner.email, album.search_hashtag) == ("browser.user@example.com", "BrowserParty")
    context.close()
