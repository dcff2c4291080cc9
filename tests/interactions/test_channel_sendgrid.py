"""SendGrid Inbound Parse: unsigned, so a per-endpoint secret; default (parsed) and raw mode."""

import base64

import pytest
from django.urls import reverse

from interactions.models import InboundEvent, Interaction
from tests.interactions.fixtures.captured import read
from tests.interactions.fixtures.webhooks import (  # noqa: F401 - pytest fixtures
    SENDGRID_SECRET,
    channel_secrets,
    in_process_tasks,
    post_webhook,
)

pytestmark = pytest.mark.django_db
SAMPLE_TYPE = "multipart/form-data; boundary=xYzZY"


def url(secret=SENDGRID_SECRET):
    return reverse("webhook-sendgrid-secret", args=[secret])


@pytest.mark.parametrize(
    "name, subject, attachments",
    [
        ("default_data.txt", "Inbound Parse Test Data", []),
        ("raw_data.txt", "Inbound Parse Test Raw Data", []),
        ("raw_data_with_attachments.txt", "Inbound Parse Test Raw Data with Attachment",
         [{"name": "SendGrid.jpg", "content_type": "image/jpeg", "size": 10295}]),
    ],
)
def test_sample_bodies_become_one_email_each(post_webhook, shared_fixtures, name, subject, attachments):
    body = (shared_fixtures / "webhooks" / "sendgrid_inbound_parse" / name).read_bytes()

    response = post_webhook(url(), body, SAMPLE_TYPE)
    retry = post_webhook(url(), body, SAMPLE_TYPE)

    assert response.status_code == retry.status_code == 200
    assert retry.json()["status"] == "duplicate"
    row = Interaction.objects.get()
    assert (row.subject, row.body.strip(), row.data["provider"]) == (subject, "Hello Twilio SendGrid!", "sendgrid")
    assert row.data["attachments"] == attachments
    assert list(row.customer.identities.values_list("value", flat=True)) == ["test@example.com"]
    assert row.customer.name == "Example User"


@pytest.mark.parametrize("name, subject, body", [("valid.txt", "Test", "bold text"), ("encoding.txt", "Hello €", "World €")])
def test_captured_requests(post_webhook, shared_fixtures, name, subject, body):
    headers, raw = read(shared_fixtures / "webhooks" / "inbound_email" / "sendgrid" / name)

    response = post_webhook(url(), raw, headers["content-type"])

    assert response.status_code == 200
    row = Interaction.objects.get()
    assert row.subject == subject
    assert row.body.startswith(body)


def test_captured_request_keeps_attachment_metadata_only(post_webhook, shared_fixtures):
    headers, raw = read(shared_fixtures / "webhooks" / "inbound_email" / "sendgrid" / "valid.txt")

    post_webhook(url(), raw, headers["content-type"])

    attachments = Interaction.objects.get().data["attachments"]
    assert sorted(a["name"] for a in attachments) == ["bar.txt", "foo.txt", "msg-12415-313.html", "msg-12415-314.html"]
    assert all(set(a) == {"name", "content_type", "size"} and a["size"] > 0 for a in attachments)


@pytest.mark.parametrize("how", ["no_secret", "wrong_secret", "wrong_basic"])
def test_requests_without_our_secret_are_rejected(post_webhook, shared_fixtures, how):
    body = (shared_fixtures / "webhooks" / "sendgrid_inbound_parse" / "default_data.txt").read_bytes()
    if how == "no_secret":
        response = post_webhook(reverse("webhook-sendgrid"), body, SAMPLE_TYPE)
    elif how == "wrong_secret":
        response = post_webhook(url(SENDGRID_SECRET[:-1] + "X"), body, SAMPLE_TYPE)
    else:
        auth = "Basic " + base64.b64encode(b"sendgrid:nope").decode()
        response = post_webhook(reverse("webhook-sendgrid"), body, SAMPLE_TYPE, HTTP_AUTHORIZATION=auth)

    assert response.status_code == (401 if how == "no_secret" else 403)
    assert not InboundEvent.objects.exists()


def test_basic_auth_secret_is_accepted(post_webhook, shared_fixtures):
    body = (shared_fixtures / "webhooks" / "sendgrid_inbound_parse" / "default_data.txt").read_bytes()
    auth = "Basic " + base64.b64encode(f"sendgrid:{SENDGRID_SECRET}".encode()).decode()

    response = post_webhook(reverse("webhook-sendgrid"), body, SAMPLE_TYPE, HTTP_AUTHORIZATION=auth)

    assert response.status_code == 200
    assert Interaction.objects.count() == 1


def test_broken_multipart_is_failed_with_reason(post_webhook):
    response = post_webhook(url(), b"--nope\r\n\r\n", "multipart/form-data; boundary=other")

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == "failed"
    assert event.error
