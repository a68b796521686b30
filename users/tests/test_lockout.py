"""Sign-in limits as an attacker meets them: no password oracle, the admin's page too, an owner
who still gets in, an address taken back through its inbox, credentials that end with a password."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from users.models import ApiToken, RateLimitCounter, User
from users.services import DEVICE_COOKIE

ATTACKER = "203.0.113.66"
OWNER_HOME = "198.51.100.7"
ELSEWHERE = "192.0.2.44"
PASSWORD = "a-long-Passphrase-42"


def client_at(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


def sign_in(client: Client, email: str, password: str, path: str = "/accounts/login/"):
    return client.post(path, {"username": email, "password": password})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def body(response) -> str:
    """The page without the per-render CSRF token."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


@pytest.fixture
def limits(settings, still_clock):
    """Sets the sign-in limits; the clock stands still (`still_clock`) while the test spends them."""

    def set_login_limits(*, address: int, email: int) -> None:
        settings.EVERHASH_RATE_LIMITS = {
            **settings.EVERHASH_RATE_LIMITS,
            "login": {"address": (address, 900), "email": (email, 900)},
        }

    return set_login_limits


def test_over_the_limit_a_right_and_a_wrong_password_get_the_same_answer_and_neither_signs_in(owner, limits):
    limits(address=100, email=3)
    attacker = client_at(ATTACKER)
    for _ in range(3):
        assert sign_in(attacker, "owner@example.com", "guess").status_code == 200
    right = sign_in(attacker, "owner@example.com", "owner-password")
    assert not signed_in(attacker)
    wrong = sign_in(attacker, "owner@example.com", "wrong-guess")
    assert not signed_in(attacker)
    assert (right.status_code, right["Retry-After"]) == (wrong.status_code, wrong["Retry-After"])
    assert right.status_code == 429
    assert body(right) == body(wrong)
    assert "Too many attempts. Please wait" in body(right)
    assert "do not match" not in body(right)


def test_a_limited_sign_in_computes_no_password_hash(owner, limits, settings):
    settings.PASSWORD_HASHERS = ["users.tests.counting_hasher.CountingHasher"]
    owner.set_password("owner-password")
    owner.save()
    limits(address=1, email=100)
    attacker = client_at(ATTACKER)
    sign_in(attacker, "owner@example.com", "guess")
    from users.tests.counting_hasher import CountingHasher

    CountingHasher.calls = 0
    for _ in range(5):
        assert sign_in(attacker, "owner@example.com", "guess").status_code == 429
    assert CountingHasher.calls == 0


def test_the_admin_sign_in_is_limited_like_the_site(staff, limits):
    limits(address=20, email=100)
    attacker = client_at(ATTACKER)
    for _ in range(20):
        assert sign_in(attacker, "staff@example.com", "guess", "/admin/login/").status_code == 200
    response = sign_in(attacker, "staff@example.com", "staff-password", "/admin/login/")
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()
    assert not signed_in(attacker)
    assert attacker.get("/admin/").status_code == 302  # still sent to sign in
    # From elsewhere, within the limits, the admin's page signs staff in as before.
    response = sign_in(client_at(OWNER_HOME), "staff@example.com", "staff-password", "/admin/login/?next=/admin/")
    assert (response.status_code, response["Location"]) == (302, "/admin/")


def test_the_owner_signs_in_from_their_browser_while_a_guesser_elsewhere_is_stopped(owner, limits):
    limits(address=1000, email=5)
    home = client_at(OWNER_HOME)
    assert sign_in(home, "owner@example.com", "owner-password").status_code == 302
    assert DEVICE_COOKIE in home.cookies
    home.post("/accounts/logout/")

    attacker = client_at(ATTACKER)
    for _ in range(30):
        sign_in(attacker, "owner@example.com", "guess")
    assert sign_in(attacker, "owner@example.com", "owner-password").status_code == 429
    # A browser that never signed in to this account is held back too...
    assert sign_in(client_at(ELSEWHERE), "owner@example.com", "owner-password").status_code == 429
    # ...but the owner's own browser is not.
    assert sign_in(home, "owner@example.com", "owner-password").status_code == 302
    assert signed_in(home)


def test_a_stolen_device_cookie_does_not_open_other_accounts(owner, other, limits):
    limits(address=1000, email=2)
    home = client_at(OWNER_HOME)
    sign_in(home, "owner@example.com", "owner-password")
    home.post("/accounts/logout/")
    for _ in range(3):
        sign_in(client_at(ATTACKER), "other@example.com", "guess")
    # The owner's cookie names the owner's account: for another one it is an unknown browser.
    assert sign_in(home, "other@example.com", "other-password").status_code == 429


def test_a_device_cookie_has_its_own_limit(owner, limits):
    limits(address=1000, email=3)
    home = client_at(OWNER_HOME)
    sign_in(home, "owner@example.com", "owner-password")
    home.post("/accounts/logout/")
    for _ in range(3):
        assert sign_in(home, "owner@example.com", "guess").status_code == 200
    assert sign_in(home, "owner@example.com", "guess").status_code == 429


def test_attempts_from_an_address_over_its_limit_do_not_count_against_the_account(owner, limits):
    limits(address=3, email=5)
    attacker = client_at(ATTACKER)
    for _ in range(20):
        sign_in(attacker, "owner@example.com", "guess")
    # Only 3 of the 20 reached the account's counter: a new browser elsewhere still gets in.
    assert sign_in(client_at(ELSEWHERE), "owner@example.com", "owner-password").status_code == 302


def test_successful_sign_ins_do_not_count_against_the_account(owner, limits):
    limits(address=1000, email=3)
    for _ in range(6):
        browser = client_at(OWNER_HOME)  # a new browser each time: no device cookie
        assert sign_in(browser, "owner@example.com", "owner-password").status_code == 302
    assert sign_in(client_at(ELSEWHERE), "owner@example.com", "owner-password").status_code == 302
    assert sum(RateLimitCounter.objects.filter(key__startswith="login:email:").values_list("count", flat=True)) == 0


# --- Someone signed up first with my address ---------------------------------------------------


def links(message) -> list[str]:
    return re.findall(r"https?://\S+", message.get_body(("plain",)).get_content())


def test_the_owner_of_an_address_takes_it_over_through_their_inbox(db, smtp_server, settings):
    settings.EVERHASH_SITE_URL = "http://testserver"
    attacker = client_at(ATTACKER)
    attacker.post(
        "/accounts/register/",
        {"email": "victim@example.com", "password1": "attackers-Pass-99", "password2": "attackers-Pass-99"},
    )
    assert not User.objects.get(email="victim@example.com").is_active

    victim = client_at(OWNER_HOME)
    victim.post("/accounts/register/", {"email": "victim@example.com", "password1": PASSWORD, "password2": PASSWORD})
    told = smtp_server.messages[-1]
    assert told["Subject"] == "Someone tried to sign up with your email address"
    [reset_page] = [url for url in links(told) if url.endswith("/accounts/password/reset/")]
    # The email's advice works: the reset reaches an account nobody activated.
    victim.post(reset_page.removeprefix("http://testserver"), {"email": "victim@example.com"})
    reset = smtp_server.messages[-1]
    assert reset["To"] == "victim@example.com"
    [link] = [url for url in links(reset) if "/accounts/password/reset/" in url]
    form = victim.get(link.removeprefix("http://testserver"), follow=True)
    response = victim.post(form.redirect_chain[-1][0], {"new_password1": PASSWORD, "new_password2": PASSWORD})
    assert response["Location"] == "/accounts/password/reset/complete/"

    user = User.objects.get(email="victim@example.com")
    assert user.is_active
    assert sign_in(client_at(ELSEWHERE), "victim@example.com", "attackers-Pass-99").status_code == 200
    assert sign_in(client_at(OWNER_HOME), "victim@example.com", PASSWORD).status_code == 302


def test_a_reset_does_not_revive_an_account_staff_disabled(owner, smtp_server, client):
    sign_in(client, "owner@example.com", "owner-password")  # signed in once: a real account
    User.objects.filter(pk=owner.pk).update(is_active=False)
    client_at(OWNER_HOME).post("/accounts/password/reset/", {"email": "owner@example.com"})
    assert smtp_server.messages == []


# --- A new password ends the old credentials -------------------------------------------------


def api_status(key: str) -> int:
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/albums/?mine=1").status_code


def test_changing_the_password_revokes_api_tokens_and_other_sessions(owner):
    key = ApiToken.objects.issue(user=owner, name="script")[1]
    assert api_status(key) == 200
    here, laptop = client_at(OWNER_HOME), client_at(ELSEWHERE)
    for browser in (here, laptop):
        assert sign_in(browser, "owner@example.com", "owner-password").status_code == 302
    response = here.post(
        "/accounts/password/change/",
        {"old_password": "owner-password", "new_password1": PASSWORD, "new_password2": PASSWORD},
    )
    assert response["Location"] == "/accounts/password/change/done/"
    assert api_status(key) == 401
    assert not ApiToken.objects.filter(user=owner).exists()
    assert here.get("/accounts/albums/").status_code == 200  # this session goes on
    assert laptop.get("/accounts/albums/").status_code == 302  # the other one is signed out


def test_resetting_the_password_revokes_api_tokens_and_sessions(owner, smtp_server, settings):
    settings.EVERHASH_SITE_URL = "http://testserver"
    key = ApiToken.objects.issue(user=owner, name="script")[1]
    laptop = client_at(ELSEWHERE)
    sign_in(laptop, "owner@example.com", "owner-password")
    browser = client_at(OWNER_HOME)
    browser.post("/accounts/password/reset/", {"email": "owner@example.com"})
    [link] = [url for url in links(smtp_server.messages[-1]) if "/accounts/password/reset/" in url]
    form = browser.get(link.removeprefix("http://testserver"), follow=True)
    browser.post(form.redirect_chain[-1][0], {"new_password1": PASSWORD, "new_password2": PASSWORD})
    assert api_status(key) == 401
    assert laptop.get("/accounts/albums/").status_code == 302
