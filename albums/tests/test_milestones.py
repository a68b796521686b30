from __future__ import annotations

from collections import Counter

from django.core import mail

from albums.models import Milestone, MilestoneDelivery
from albums.services import (
    announce_milestone,
    announce_pending_milestones,
    follow,
    record_milestones,
    update_milestones,
)
from albums.signals import milestone_reached
from everhash.testing.builders import add_pictures, make_album
from everhash.testing.fixtures import SMTPInbox
from pictures.models import Picture


def test_nothing_happens_below_the_first_milestone(album):
    add_pictures(album, 99)
    assert update_milestones(album=album) == 0
    assert not Milestone.objects.exists()
    assert mail.outbox == []


def test_a_jump_from_95_to_230_sends_the_100_and_200_emails_once_each(album):
    add_pictures(album, 95)
    update_milestones(album=album)
    add_pictures(album, 135)
    assert update_milestones(album=album) == 2
    assert sorted(m.subject for m in mail.outbox) == ["Sunsets reached 100 pictures", "Sunsets reached 200 pictures"]
    assert update_milestones(album=album) == 0
    assert len(mail.outbox) == 2


def test_500_is_not_skipped_when_the_count_jumps_past_it(album):
    add_pictures(album, 480)
    update_milestones(album=album)
    add_pictures(album, 40)
    update_milestones(album=album)
    assert list(Milestone.objects.values_list("threshold", flat=True)) == [100, 200, 300, 400, 500]
    assert len(mail.outbox) == 5


def test_hidden_and_pending_pictures_do_not_count(album):
    add_pictures(album, 99)
    add_pictures(album, 5, status=Picture.Status.HIDDEN)
    add_pictures(album, 5, status=Picture.Status.PENDING)
    assert update_milestones(album=album) == 0


def test_thresholds_come_from_the_settings(album, settings):
    settings.EVERHASH_MILESTONES = [3, 7]
    add_pictures(album, 8)
    update_milestones(album=album)
    assert sorted(Milestone.objects.values_list("threshold", flat=True)) == [3, 7]


def test_each_album_has_its_own_milestones(album, other):
    second = make_album(owner=other, hashtag="sunrise")
    add_pictures(album, 100)
    add_pictures(second, 100)
    update_milestones(album=album)
    update_milestones(album=second)
    assert sorted(m.to[0] for m in mail.outbox) == ["other@example.com", "owner@example.com"]


def test_a_recorded_milestone_is_not_recorded_twice(album):
    add_pictures(album, 100)
    assert len(record_milestones(album=album)) == 1
    assert record_milestones(album=album) == []


def test_a_claimed_milestone_is_not_sent_by_a_second_process(album):
    add_pictures(album, 100)
    [milestone] = record_milestones(album=album)
    sent = []

    def reenter(sender, milestone, **kwargs):
        # While the first process is sending, a second one tries the same milestone.
        sent.append(announce_milestone(milestone=Milestone.objects.get(pk=milestone.pk)))

    milestone_reached.connect(reenter, dispatch_uid="reenter")
    try:
        assert announce_milestone(milestone=milestone) is True
    finally:
        milestone_reached.disconnect(dispatch_uid="reenter")
    assert sent == [False]
    assert len(mail.outbox) == 1


def test_the_signal_carries_album_threshold_and_count(album):
    add_pictures(album, 120)
    received = []

    def listener(sender, album, threshold, count, **kwargs):
        received.append((album.hashtag, threshold, count))

    milestone_reached.connect(listener, dispatch_uid="listener")
    try:
        update_milestones(album=album)
    finally:
        milestone_reached.disconnect(dispatch_uid="listener")
    assert received == [("sunset", 100, 120)]


def test_an_smtp_failure_is_retried_on_a_later_run_and_sent_once(album, smtp_down, settings):
    add_pictures(album, 100)
    assert update_milestones(album=album) == 0
    milestone = Milestone.objects.get()
    assert milestone.notified_at is None
    assert milestone.attempts == 1
    assert milestone.last_error

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert update_milestones(album=album) == 1
    assert update_milestones(album=album) == 0
    assert len(mail.outbox) == 1
    milestone.refresh_from_db()
    assert milestone.notified_at is not None
    assert milestone.attempts == 2


def test_the_email_arrives_through_real_smtp_with_text_html_and_links(album, smtp_server, settings):
    settings.EVERHASH_SITE_URL = "https://everhash.example.com"
    add_pictures(album, 100, author_handle="sun_chaser")
    update_milestones(album=album)
    [message] = smtp_server.messages
    assert message["Subject"] == "Sunsets reached 100 pictures"
    assert message.envelope_to == ["owner@example.com"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "now has 100 pictures" in text
    assert "https://everhash.example.com/album/sunset/" in text
    assert "@sun_chaser" in text
    assert 'href="https://everhash.example.com/album/sunset/"' in html
    assert html.count("<img ") == 6
    assert 'src="https://everhash.example.com/media/' in html
    assert "To stop milestone emails, change your settings: https://everhash.example.com/accounts/albums/" in text


def test_album_data_is_escaped_in_html_and_cannot_inject_headers(owner, smtp_server):
    album = make_album(owner=owner, hashtag="evil", title="<script>x</script>\r\nBcc: victim@example.com")
    add_pictures(album, 100, author_handle="<b>bold</b>")
    update_milestones(album=album)
    [message] = smtp_server.messages
    assert message["Bcc"] is None
    assert message.envelope_to == ["owner@example.com"]
    assert "\n" not in message["Subject"]
    html = message.get_body(("html",)).get_content()
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;" in html


class RefusingOnce(SMTPInbox):
    """A real SMTP server that answers 451 to one recipient, the first time only."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
        self.refused = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802  (aiosmtpd's hook)
        if address == self.address and not self.refused:
            self.refused += 1
            return "451 4.3.0 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_a_recipient_refused_once_gets_one_copy_on_the_retry_and_the_others_none_again(
    album, other, smtp_down, settings
):
    from aiosmtpd.controller import Controller

    follow(album=album, user=other)
    inbox = RefusingOnce(other.email)
    controller = Controller(
        inbox, hostname="127.0.0.1", port=settings.EMAIL_PORT
    )  # where smtp_down found nothing listening
    controller.start()
    try:
        settings.EVERHASH_MILESTONES = [3]
        add_pictures(album, 3)
        assert update_milestones(album=album) == 0  # the follower's copy was refused
        assert inbox.refused == 1
        milestone = Milestone.objects.get()
        assert milestone.notified_at is None and "451" in milestone.last_error

        assert announce_pending_milestones() == 1  # the retry on the next run
        assert announce_pending_milestones() == 0
    finally:
        controller.stop()
    copies = Counter(address for message in inbox.messages for address in message.envelope_to)
    assert copies == {album.owner.email: 1, other.email: 1}
    deliveries = {d.email: d for d in MilestoneDelivery.objects.filter(milestone=milestone)}
    assert deliveries[other.email].attempts == 2 and deliveries[album.owner.email].attempts == 1
    assert all(d.sent_at for d in deliveries.values())
