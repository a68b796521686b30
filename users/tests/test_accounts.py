"""Accounts: sign-up with email activation through a real SMTP server, sign-in, resets, limits."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from albums.models import Album, Follower, Milestone
from albums.services import update_milestones
from everhash.testing.builders import add_pictures, make_album, make_picture
from tweets.models import PendingMedia
from users.models import User

PASSWORD = "a-long-Passphrase-42"


def links(message) -> list[str]:
    text = message.get_body(("plain",)).get_content() if hasattr(message, "get_body") else message.body
    return re.findall(r"https?://\S+", text)


def sign_up(client, email: str, password: str = PASSWORD):
    return client.post("/accounts/register/", {"email": email, "password1": password, "password2": password})


def test_sign_up_activate_sign_in_add_an_album_and_see_it_on_the_dashboard(client, db, smtp_server, settings):
    settings.EVERHASH_SITE_URL = "http://testserver"
    response = sign_up(client, "New.Person@Example.com")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/register/complete/"
    assert "Follow its link within 7 days" in client.get(response["Location"]).content.decode()
    user = User.objects.get()
    assert user.email == "new.person@example.com" and not user.is_active

    [message] = smtp_server.messages
    assert message["To"] == "new.person@example.com"
    assert message["Subject"] == "Activate your everhash account"
    assert message.get_body(("html",)) is not None
    [activation_url] = [url for url in links(message) if "/accounts/activate/" in url]
    path = activation_url.removeprefix("http://testserver")
    # Opening the link shows a button: a link scanner's GET does not activate the account.
    page = client.get(path)
    assert "Activate my account" in page.content.decode()
    assert not User.objects.get().is_active
    key = re.search(r"activation_key=([^&\s]+)", path).group(1)
    response = client.post("/accounts/activate/", {"activation_key": key})
    assert response["Location"] == "/accounts/activate/complete/"
    assert User.objects.get().is_active

    response = client.post("/accounts/login/", {"username": "NEW.person@example.com", "password": PASSWORD})
    assert response["Location"] == "/accounts/albums/"
    response = client.post("/album/add/", {"hashtag": "#MyParty2026"})
    # The hashtag as written travels along: X is searched for #MyParty2026 (docs/fetching.md).
    assert response["Location"] == "/album/add/myparty2026/?as=%23MyParty2026"
    confirm = client.get(response["Location"]).content.decode()
    assert "Create the album #myparty2026" in confirm
    response = client.post(response["Location"])
    assert response["Location"] == "/accounts/albums/"
    album = Album.objects.get(hashtag="myparty2026")
    assert album.owner == user and album.next_fetch_at is None  # due for the next fetch_tweets run
    assert album.search_hashtag == "MyParty2026"
    dashboard = client.get("/accounts/albums/").content.decode()
    assert "#myparty2026" in dashboard
    assert "not fetched yet" in dashboard


def test_an_expired_or_forged_activation_link_says_so(client, db):
    response = client.post("/accounts/activate/", {"activation_key": "forged:key"})
    assert "This activation link does not work" in response.content.decode()


def test_signing_up_with_a_known_email_answers_the_same_and_tells_the_owner(client, owner, smtp_server):
    known = sign_up(client, "OWNER@example.com")
    unknown = sign_up(Client(), "someone.new@example.com")
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    assert User.objects.filter(email="owner@example.com").count() == 1
    subjects = {m["To"]: m["Subject"] for m in smtp_server.messages}
    assert subjects == {
        "owner@example.com": "Someone tried to sign up with your email address",
        "someone.new@example.com": "Activate your everhash account",
    }
    owner.refresh_from_db()
    assert owner.check_password("owner-password")  # nothing changed


def test_the_password_reset_answers_the_same_for_known_and_unknown_emails(client, owner, smtp_server):
    known = client.post("/accounts/password/reset/", {"email": "owner@example.com"})
    unknown = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    [message] = smtp_server.messages
    assert message["To"] == "owner@example.com"
    [url] = [u for u in links(message) if "/accounts/password/reset/" in u]
    path = "/" + url.split("/", 3)[3]
    form_page = client.get(path, follow=True)
    assert "Choose a new password" in form_page.content.decode()
    response = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "another-Long-pass-77", "new_password2": "another-Long-pass-77"},
    )
    assert response["Location"] == "/accounts/password/reset/complete/"
    assert client.login(username="owner@example.com", password="another-Long-pass-77")


def test_too_many_sign_in_attempts_for_one_email_get_a_clear_429(client, owner, settings, still_clock):
    settings.EVERHASH_RATE_LIMITS = {
        **settings.EVERHASH_RATE_LIMITS,
        "login": {"address": (100, 900), "email": (3, 900)},
    }
    for _ in range(3):
        assert (
            client.post("/accounts/login/", {"username": "owner@example.com", "password": "wrong"}).status_code == 200
        )
    response = client.post("/accounts/login/", {"username": "Owner@Example.com", "password": "owner-password"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many attempts. Please wait" in response.content.decode()
    # Another email from the same address is still let in.
    User.objects.create_user("second@example.com", "second-password")
    assert (
        client.post("/accounts/login/", {"username": "second@example.com", "password": "second-password"}).status_code
        == 302
    )


def test_too_many_attempts_from_one_address_are_limited_whatever_the_email(client, db, settings, still_clock):
    settings.EVERHASH_RATE_LIMITS = {
        **settings.EVERHASH_RATE_LIMITS,
        "signup": {"address": (2, 3600), "email": (50, 3600)},
    }
    assert sign_up(client, "a@example.com").status_code == 302
    assert sign_up(client, "b@example.com").status_code == 302
    response = sign_up(client, "c@example.com")
    assert response.status_code == 429
    assert not User.objects.filter(email="c@example.com").exists()


def test_password_resets_are_limited_per_email(client, owner, settings, still_clock):
    settings.EVERHASH_RATE_LIMITS = {
        **settings.EVERHASH_RATE_LIMITS,
        "password_reset": {"address": (100, 3600), "email": (2, 3600)},
    }
    for _ in range(2):
        client.post("/accounts/password/reset/", {"email": "owner@example.com"})
    assert client.post("/accounts/password/reset/", {"email": "owner@example.com"}).status_code == 429
    assert len(mail.outbox) == 2


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/album/sunset/", "/album/sunset/"),
        ("https://evil.example.com/", "/accounts/albums/"),
        ("//evil.example.com/", "/accounts/albums/"),
        ("javascript:alert(1)", "/accounts/albums/"),
        ("/\\evil.example.com", "/accounts/albums/"),
    ],
)
def test_next_only_goes_to_local_pages(client, owner, next_url, expected):
    response = client.post(
        "/accounts/login/", {"username": "owner@example.com", "password": "owner-password", "next": next_url}
    )
    assert response["Location"] == expected


CSRF_FORMS = [
    "/accounts/login/",
    "/accounts/register/",
    "/accounts/password/reset/",
    "/accounts/activate/",
    "/accounts/logout/",
    "/accounts/delete/",
    "/accounts/tokens/",
    "/album/add/",
    "/album/add/newtag/",
    "/album/sunset/follow/",
    "/accounts/albums/sunset/pause/",
    "/accounts/albums/sunset/edit/",
    "/accounts/albums/sunset/delete/",
    "/accounts/albums/sunset/emails/",
]


@pytest.mark.parametrize("url", CSRF_FORMS)
def test_every_form_needs_its_csrf_token(album, owner, url):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(url, {"hashtag": "x", "email": "owner@example.com"}).status_code == 403


ACTIONS = [
    ("post", "/accounts/albums/sunset/pause/", {}),
    ("post", "/accounts/albums/sunset/resume/", {}),
    ("post", "/accounts/albums/sunset/rotate-link/", {}),
    ("post", "/accounts/albums/sunset/settings/", {"visibility": "unlisted", "owner_emails": "on"}),
    ("get", "/accounts/albums/sunset/edit/", {}),
    ("post", "/accounts/albums/sunset/edit/", {"title": "Mine now", "description": ""}),
    ("get", "/accounts/albums/sunset/delete/", {}),
    ("post", "/accounts/albums/sunset/delete/", {}),
    ("get", "/album/sunset/download.zip", {}),
]


@pytest.mark.parametrize(("method", "url", "data"), ACTIONS)
@pytest.mark.parametrize("who", ["owner", "staff", "other", "anonymous"])
def test_only_the_owner_and_staff_can_change_an_album(client, album, owner, other, staff, who, method, url, data):
    user = {"owner": owner, "staff": staff, "other": other, "anonymous": None}[who]
    if user:
        client.force_login(user)
    before = Album.objects.filter(pk=album.pk).values().first()
    response = getattr(client, method)(url, data)
    if who == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    elif who == "other":
        assert response.status_code in (403, 404)
    else:
        assert response.status_code in (200, 302)
        return
    assert Album.objects.filter(pk=album.pk).values().first() == before


def test_an_unlisted_album_of_someone_else_is_a_404_for_its_actions(client, owner, other):
    make_album(owner=owner, hashtag="hush", visibility=Album.Visibility.UNLISTED)
    client.force_login(other)
    assert client.post("/album/hush/follow/").status_code == 404
    assert client.post("/accounts/albums/hush/pause/").status_code == 404


def test_the_dashboard_pauses_resumes_and_rotates_the_secret_link(client, owner, album):
    client.force_login(owner)
    client.post("/accounts/albums/sunset/pause/")
    album.refresh_from_db()
    assert not album.is_active
    client.post("/accounts/albums/sunset/resume/")
    client.post("/accounts/albums/sunset/settings/", {"visibility": "unlisted"})
    old = album.secret
    client.post("/accounts/albums/sunset/rotate-link/")
    album.refresh_from_db()
    assert album.is_active and album.next_fetch_at is None
    assert album.visibility == "unlisted" and not album.owner_emails
    assert album.secret != old and len(album.secret) >= 43
    assert Client().get(f"/album/sunset/?key={old}").status_code == 404
    assert Client().get(f"/album/sunset/?key={album.secret}").status_code == 200


def test_the_dashboard_says_what_went_wrong_in_plain_words(client, owner):
    make_album(owner=owner, hashtag="broken", last_error="X refused the search request (400).", failures=3)
    client.force_login(owner)
    body = client.get("/accounts/albums/").content.decode()
    assert "The last fetch went wrong: X refused the search request (400)." in body
    assert "3 times in a row" in body


def test_the_dashboard_counts_without_reading_every_picture_row(client, owner, other):
    album = make_album(owner=owner, hashtag="busy")
    add_pictures(album, 30)
    add_pictures(album, 2, status="pending")
    for n in range(3):
        PendingMedia.objects.create(
            album=album,
            source="x",
            post_id=str(n),
            media_key=f"3_{n}",
            url=f"https://pbs.twimg.com/media/{n}.jpg",
            post={},
            reason="timeout",
            next_attempt_at=timezone.now(),
        )
    Follower.objects.create(album=album, user=other)
    client.force_login(owner)
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/accounts/albums/").content.decode()
    assert (
        "30 pictures" in body and "3 photos could not be downloaded yet" in body and "2</strong> await approval" in body
    )
    # The visible count is the album's own; the approval queue a subquery: no join over the pictures,
    # whose rows would multiply with the waiting photos' and take as long as the album is big.
    assert not [
        q["sql"] for q in queries if 'JOIN "pictures_picture"' in q["sql"] or "JOIN `pictures_picture`" in q["sql"]
    ]
    client.force_login(other)
    assert "#busy &middot; 30 pictures" in client.get("/accounts/albums/").content.decode()


def test_adding_an_existing_hashtag_leads_to_the_album_where_one_can_follow_it(client, album, other, mailoutbox):
    client.force_login(other)
    response = client.post("/album/add/", {"hashtag": "SUNSET"})
    response = client.get(response["Location"])
    assert response["Location"] == "/album/sunset/"
    page = client.get("/album/sunset/").content.decode()
    assert "already has an album" in page and ">Follow<" in page
    client.post("/album/sunset/follow/", {"follow": "1"})
    assert Follower.objects.filter(album=album, user=other).exists()
    for _ in range(100):
        make_picture(album=album)
    update_milestones(album=album)
    assert sorted(m.to[0] for m in mailoutbox) == ["other@example.com", "owner@example.com"]
    client.post("/accounts/albums/sunset/emails/", {})  # unticked: no more milestone emails
    assert not Follower.objects.get(user=other).milestone_emails


def test_a_bad_hashtag_gets_a_clear_message(client, owner):
    client.force_login(owner)
    response = client.post("/album/add/", {"hashtag": "two words"})
    assert response.status_code == 400
    assert "cannot contain spaces" in response.content.decode()


def test_deleting_an_album_removes_its_pictures(client, owner, album):
    make_picture(album=album)
    client.force_login(owner)
    assert "1 picture" in client.get("/accounts/albums/sunset/delete/").content.decode()
    client.post("/accounts/albums/sunset/delete/")
    assert not Album.objects.exists()


def test_deleting_my_account_deletes_my_albums_after_my_password(client, owner, album):
    Milestone.objects.create(album=album, threshold=100, count=100)
    client.force_login(owner)
    response = client.post("/accounts/delete/", {"password": "wrong"})
    assert "That is not your password" in response.content.decode()
    response = client.post("/accounts/delete/", {"password": "owner-password"})
    assert response["Location"] == "/"
    assert not User.objects.filter(email="owner@example.com").exists()
    assert not Album.objects.exists()


def test_closed_registration_sends_visitors_to_a_clear_page(client, db, settings):
    settings.REGISTRATION_OPEN = False
    response = client.get("/accounts/register/")
    assert response["Location"] == "/accounts/register/closed/"
    assert "Sign-up is closed" in client.get(response["Location"]).content.decode()


def test_logout_is_a_post(client, owner):
    client.force_login(owner)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/")["Location"] == "/"


def test_header_injection_through_the_signup_email_is_impossible(client, db):
    response = sign_up(client, "victim@example.com\r\nBcc: everyone@example.com")
    assert response.status_code == 200  # not a valid email: the form says so, nothing is sent
    assert mail.outbox == []
