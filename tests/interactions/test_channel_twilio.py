"""Twilio: X-Twilio-Signature over the public URL and every parameter; calls by CallSid; SMS and WhatsApp by MessageSid."""

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from django.urls import reverse

from interactions.channels import SignatureInvalid, SignatureMissing, twilio
from interactions.ingest import IdentityIn, IngestItem
from interactions.models import InboundEvent, Interaction
from interactions.services import interactions_ingest
from tests.interactions.fixtures.captured import project
from tests.interactions.fixtures.webhooks import (  # noqa: F401 - pytest fixtures
    TWILIO_BASE,
    channel_secrets,
    in_process_tasks,
    post_webhook,
    twilio_post,
    twilio_sign,
)

# The vectors of Twilio's documentation (../shared/fixtures/README.md).
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_URL_PORT = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212"
VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
VECTOR_SIGNATURE_PORT = "kvajT1Ptam85bY51eRf/AJRuM3w="
FORM = "application/x-www-form-urlencoded"


def form(name):
    return parse_qsl(project("twilio", name).read_text(), keep_blank_values=True)


@pytest.mark.parametrize("configured", [VECTOR_URL, VECTOR_URL_PORT])
@pytest.mark.parametrize("header", [VECTOR_SIGNATURE, VECTOR_SIGNATURE_PORT])
def test_documented_vectors_verify_with_and_without_the_default_port(configured, header):
    twilio.verify(body=VECTOR_PARAMS.encode(), content_type=FORM, url=configured, auth_token="12345", header=header)


def test_signature_computed_matches_the_documented_vector():
    params = parse_qsl(VECTOR_PARAMS)
    assert twilio.signature(auth_token="12345", url=VECTOR_URL, params=params) == VECTOR_SIGNATURE
    assert twilio.signature(auth_token="12345", url=VECTOR_URL_PORT, params=params) == VECTOR_SIGNATURE_PORT


@pytest.mark.parametrize(
    "body, url, header",
    [
        (VECTOR_PARAMS.replace("1234&", "1235&"), VECTOR_URL, VECTOR_SIGNATURE),  # one byte of a value
        (VECTOR_PARAMS, VECTOR_URL.replace("foo=1", "foo=2"), VECTOR_SIGNATURE),  # one byte of the URL
        (VECTOR_PARAMS, VECTOR_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8A"),  # one byte of the signature
        (VECTOR_PARAMS + "&Extra=1", VECTOR_URL, VECTOR_SIGNATURE),  # a parameter the signature does not cover
    ],
)
def test_one_byte_changed_is_rejected(body, url, header):
    with pytest.raises(SignatureInvalid):
        twilio.verify(body=body.encode(), content_type=FORM, url=url, auth_token="12345", header=header)


def test_missing_header_is_rejected():
    with pytest.raises(SignatureMissing):
        twilio.verify(body=VECTOR_PARAMS.encode(), content_type=FORM, url=VECTOR_URL, auth_token="12345", header="")


@pytest.mark.django_db
@pytest.mark.parametrize("signed_base", [TWILIO_BASE, TWILIO_BASE + ":443"])
def test_endpoint_accepts_the_public_url_with_or_without_port(post_webhook, signed_base):
    response = twilio_post(post_webhook, "webhook-twilio-messaging", form("sms.form"), url_base=signed_base)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert InboundEvent.objects.get().status == "processed"


@pytest.mark.django_db
def test_endpoint_accepts_parameters_twilio_adds_without_notice(post_webhook):
    params = form("sms.form") + [("AddressSid", "AD123"), ("MessagingServiceSid", "MG456")]

    response = twilio_post(post_webhook, "webhook-twilio-messaging", params)

    assert response.status_code == 200
    assert Interaction.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["missing", "wrong", "signed_for_other_url"])
def test_endpoint_rejects_bad_signatures_and_stores_nothing(post_webhook, case):
    params = form("sms.form")
    signature = {
        "missing": "",
        "wrong": twilio_sign(TWILIO_BASE + reverse("webhook-twilio-messaging"), params, token="other"),
        "signed_for_other_url": twilio_sign(TWILIO_BASE + reverse("webhook-twilio-voice"), params),
    }[case]

    response = twilio_post(post_webhook, "webhook-twilio-messaging", params, signature=signature)

    assert response.status_code == (401 if case == "missing" else 403)
    assert not InboundEvent.objects.exists()
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_voice_callbacks_make_one_call_with_its_duration_and_outcome(post_webhook):
    # when: ringing, then completed, then Twilio retries the completed callback
    twilio_post(post_webhook, "webhook-twilio-voice", form("voice_ringing.form"))
    twilio_post(post_webhook, "webhook-twilio-voice", form("voice_completed.form"))
    retry = twilio_post(post_webhook, "webhook-twilio-voice", form("voice_completed.form"))

    # then
    assert retry.status_code == 200
    assert InboundEvent.objects.count() == 2
    call = Interaction.objects.get()
    assert (call.source, call.external_id, call.channel, call.kind, call.direction) == (
        "twilio", "CA11111111111111111111111111111111", "phone", "call", "inbound"
    )
    assert call.occurred_at == datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    assert call.data["status"] == "completed"
    assert call.data["duration_seconds"] == 187
    assert call.data["outcome"] == "completed"
    assert set(call.data["status_history"]) == {"ringing", "completed"}
    assert call.customer.identities.get().value == "+14158675309"


@pytest.mark.django_db
def test_a_late_ringing_callback_does_not_undo_completed(post_webhook):
    twilio_post(post_webhook, "webhook-twilio-voice", form("voice_completed.form"))
    twilio_post(post_webhook, "webhook-twilio-voice", form("voice_ringing.form"))

    call = Interaction.objects.get()
    assert (call.data["status"], call.data["duration_seconds"]) == ("completed", 187)


@pytest.mark.django_db
def test_sms_becomes_one_message_deduplicated_on_message_sid(post_webhook):
    params = form("sms.form")
    twilio_post(post_webhook, "webhook-twilio-messaging", params)
    # A retry with a parameter Twilio added: a different body, the same MessageSid.
    twilio_post(post_webhook, "webhook-twilio-messaging", params + [("ApiVersion2", "x")])

    message = Interaction.objects.get()
    assert (message.channel, message.kind, message.external_id) == ("sms", "message", "SM22222222222222222222222222222222")
    assert message.body == "Where is my order? \U0001f641"
    assert message.customer.identities.get().kind == "phone"
    assert InboundEvent.objects.order_by("id").last().result["duplicate"] == 1


@pytest.mark.django_db
def test_whatsapp_sender_is_a_whatsapp_identity(post_webhook):
    twilio_post(post_webhook, "webhook-twilio-messaging", form("whatsapp.form"))

    message = Interaction.objects.get()
    assert message.channel == "whatsapp"
    assert message.body == "سلام، سفارش من کجاست؟"
    assert list(message.customer.identities.values_list("kind", "value")) == [("whatsapp", "+4915112345678")]
    assert message.customer.name == "Lisa"
    assert message.data["media"] == [{
        "url": "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages/SM33/Media/ME1",
        "content_type": "image/jpeg",
    }]


@pytest.mark.django_db
def test_message_status_updates_the_outbound_message_not_a_new_row(post_webhook):
    # given: the message we sent, recorded with Twilio's sid
    interactions_ingest(items=[IngestItem(
        source="twilio", external_id="SM44444444444444444444444444444444", channel="sms", kind="message",
        direction="outbound", author_type="agent", occurred_at=datetime(2025, 3, 3, 9, tzinfo=UTC),
        identities=[IdentityIn("phone", "+14158675309")], body="Your order ships today",
    )])

    # when
    response = twilio_post(post_webhook, "webhook-twilio-messaging", form("message_status_delivered.form"))

    # then
    assert response.status_code == 200
    sent = Interaction.objects.get()
    assert sent.data["status"] == "delivered"
    assert sent.data["delivery_status"] == "delivered"
    event = InboundEvent.objects.get()
    assert (event.status, event.result["updated"], event.result["created"]) == ("processed", 1, 0)


@pytest.mark.django_db
def test_status_of_an_unknown_message_fails_with_the_reason(post_webhook):
    twilio_post(post_webhook, "webhook-twilio-messaging", form("message_status_delivered.form"))

    event = InboundEvent.objects.get()
    assert event.status == "failed"
    assert "no interaction for status 'delivered'" in event.error
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_withheld_caller_fails_with_the_reason_and_answers_200(post_webhook):
    params = [(k, "anonymous" if k in ("From", "Caller") else v) for k, v in form("voice_completed.form")]

    response = twilio_post(post_webhook, "webhook-twilio-voice", params)

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == "failed"
    assert "'anonymous' is not a valid phone number" in event.error


@pytest.mark.django_db
def test_outbound_call_belongs_to_the_number_called(post_webhook):
    params = [
        (k, {"Direction": "outbound-api", "From": "+18005551212", "To": "+14158675309", "CallSid": "CA2"}.get(k, v))
        for k, v in form("voice_completed.form")
    ]

    twilio_post(post_webhook, "webhook-twilio-voice", params)

    call = Interaction.objects.get()
    assert (call.direction, call.author_type, call.external_id) == ("outbound", "agent", "CA2")
    assert call.customer.identities.get().value == "+14158675309"
    assert call.data["duration_seconds"] == 187
