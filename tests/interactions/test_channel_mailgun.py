"""Mailgun routes: HMAC-SHA256(timestamp + token) with the signing key and a replay window; parsed or body-mime."""

import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from interactions.channels import SignatureInvalid, SignatureMissing, mailgun
from interactions.models import InboundEvent, Interaction
from tests.interactions.fixtures.captured import read
from tests.interactions.fixtures.webhooks import (  # noqa: F401 - pytest fixtures
    channel_secrets,
    in_process_tasks,
    mailgun_signature,
    post_webhook,
)

# The vector of ../shared/fixtures/README.md (Mailgun's documentation).
KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
TIMESTAMP = "1403645220"
TOKEN = "5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6"
SIGNATURE = "9cfc5c41582e51246e73c88d34db3af0a3a2692a76fbab81492842f000256d33"
FORM = "application/x-www-form-urlencoded"


def vector_body(**overrides):
    fields = {"timestamp": TIMESTAMP, "token": TOKEN, "signature": SIGNATURE, **overrides}
    return urlencode(fields).encode()


def test_documented_vector_verifies_and_one_byte_changed_does_not():
    mailgun.verify(body=vector_body(), content_type=FORM, signing_key=KEY)
    for changed in ({"token": TOKEN[:-1] + "7"}, {"timestamp": "1403645221"}, {"signature": SIGNATURE[:-1] + "4"}):
        with pytest.raises(SignatureInvalid):
            mailgun.verify(body=vector_body(**changed), content_type=FORM, signing_key=KEY)
    with pytest.raises(SignatureMissing):
        mailgun.verify(body=urlencode({"timestamp": TIMESTAMP, "token": TOKEN}).encode(), content_type=FORM, signing_key=KEY)


def test_replay_window_refuses_an_old_signed_request():
    now = datetime.fromtimestamp(int(TIMESTAMP), tz=UTC)
    mailgun.verify(body=vector_body(), content_type=FORM, signing_key=KEY, replay_window_seconds=300, now=now)
    later = datetime.fromtimestamp(int(TIMESTAMP) + 301, tz=UTC)
    with pytest.raises(SignatureInvalid, match="window"):
        mailgun.verify(body=vector_body(), content_type=FORM, signing_key=KEY, replay_window_seconds=300, now=later)


@pytest.mark.parametrize("mode", ["parsed", "raw"])
def test_captured_requests_verify_with_their_key(shared_fixtures, mode):
    folder = shared_fixtures / "webhooks" / "inbound_email" / "mailgun" / mode
    headers, body = read(folder / "valid.txt")
    mailgun.verify(body=body, content_type=headers["content-type"], signing_key="foo")
    headers, body = read(folder / "invalid.txt")
    with pytest.raises(SignatureInvalid):
        mailgun.verify(body=body, content_type=headers["content-type"], signing_key="foo")
    headers, body = read(folder / "missing.txt")
    with pytest.raises(SignatureMissing):
        mailgun.verify(body=body, content_type=headers["content-type"], signing_key="foo")


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["parsed", "raw"])
def test_captured_valid_request_becomes_one_email(post_webhook, settings, shared_fixtures, mode):
    settings.MAILGUN_SIGNING_KEY = "foo"
    settings.MAILGUN_REPLAY_WINDOW_SECONDS = 0  # captured in 2013
    headers, body = read(shared_fixtures / "webhooks" / "inbound_email" / "mailgun" / mode / "valid.txt")

    response = post_webhook(reverse("webhook-mailgun"), body, headers["content-type"])
    retry = post_webhook(reverse("webhook-mailgun"), body, headers["content-type"])

    assert response.status_code == retry.status_code == 200
    row = Interaction.objects.get()
    assert (row.source, row.channel, row.subject) == ("email", "email", "Test")
    assert row.body.startswith("bold text")
    assert row.data["provider"] == "mailgun"
    assert row.customer.name == "James McKinney"
    assert list(row.customer.identities.values_list("kind", "value")) == [("email", "james@opennorth.ca")]
    assert [a["name"] for a in row.data["attachments"]] == ["foo.txt", "bar.txt"]
    assert all(set(a) == {"name", "content_type", "size"} for a in row.data["attachments"])


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["invalid", "missing"])
def test_captured_bad_requests_are_rejected_and_nothing_stored(post_webhook, settings, shared_fixtures, case):
    settings.MAILGUN_SIGNING_KEY = "foo"
    settings.MAILGUN_REPLAY_WINDOW_SECONDS = 0
    headers, body = read(shared_fixtures / "webhooks" / "inbound_email" / "mailgun" / "parsed" / f"{case}.txt")

    response = post_webhook(reverse("webhook-mailgun"), body, headers["content-type"])

    assert response.status_code == (403 if case == "invalid" else 401)
    assert not InboundEvent.objects.exists()


@pytest.mark.django_db
def test_old_timestamp_is_refused_by_the_endpoint(post_webhook, settings, shared_fixtures):
    settings.MAILGUN_SIGNING_KEY = "foo"
    headers, body = read(shared_fixtures / "webhooks" / "inbound_email" / "mailgun" / "raw" / "valid.txt")

    response = post_webhook(reverse("webhook-mailgun"), body, headers["content-type"])

    assert response.status_code == 403
    assert not InboundEvent.objects.exists()


@pytest.mark.django_db
def test_fresh_signed_form_with_body_mime_threads_like_raw_email(post_webhook):
    timestamp, token = str(int(time.time())), "a" * 50
    mime = (
        "From: Omar <omar@example.com>\r\nSubject: =?UTF-8?B?2KfZhNi32YTYqA==?=\r\n"
        "Message-ID: <mg-1@example.com>\r\nDate: Mon, 03 Mar 2025 09:00:00 +0000\r\n\r\nWhere is it?\r\n"
    )
    body = urlencode({
        "timestamp": timestamp, "token": token, "signature": mailgun_signature(timestamp, token), "body-mime": mime,
    }).encode()

    response = post_webhook(reverse("webhook-mailgun"), body, FORM)

    assert response.status_code == 200
    row = Interaction.objects.get()
    assert (row.external_id, row.subject, row.body) == ("mg-1@example.com", "الطلب", "Where is it?")
