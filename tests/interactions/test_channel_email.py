"""Raw RFC 5322 email: every real message goes through, headers and bodies decode exactly, replies thread."""

import base64
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from interactions.models import Conversation, InboundEvent, Interaction
from tests.interactions.fixtures.captured import project
from tests.interactions.fixtures.webhooks import (  # noqa: F401 - pytest fixtures
    EMAIL_SECRET,
    channel_secrets,
    email_post,
    in_process_tasks,
    post_webhook,
)

pytestmark = pytest.mark.django_db


def own(name):
    return project("email", name).read_bytes()


def test_every_shared_email_goes_through_without_a_500(post_webhook, shared_fixtures):
    # given
    paths = sorted((shared_fixtures / "emails").glob("*/*"))
    assert len(paths) == 61

    # when
    statuses = [email_post(post_webhook, path.read_bytes()).status_code for path in paths]

    # then: every one acknowledged and ended, processed, or failed with its reason
    assert set(statuses) == {200}
    events = list(InboundEvent.objects.all())
    assert len(events) == len(paths)
    assert {e.status for e in events} <= {"processed", "failed"}
    failed = [e for e in events if e.status == "failed"]
    assert all(e.error for e in failed)
    # Only messages without any sender address (or a bounce naming no recipient) cannot be attributed.
    assert all("no valid sender" in e.error or "names no failed recipient" in e.error for e in failed), [
        e.error for e in failed
    ]
    assert len(failed) <= 9
    assert len(events) - len(failed) >= 52
    # Several of CPython's samples share a Message-ID: one interaction each, not a copy per event.
    assert Interaction.objects.count() == len({i for e in events for i in e.result.get("interactions", [])})


@pytest.mark.parametrize(
    "name, subject, sender",
    [
        ("mail_parser/mail_test_12.eml", "代开各地增值税发票", "baoguan@hotmail.com"),  # GB2312 header
        ("mail_parser/mail_test_9.eml", "我把镜头拉近些，你们看看这个是什么屄，这种场合自然少不了内射", "zyb@sgis.com.cn"),
        ("mail_parser/mail_test_5.eml", "Je prépare mon été zéro complexe !", "contact@carlance.fr"),  # ISO-8859-1
        ("mail_parser/mail_test_17.eml", "Transferencia Interbancaria Banca en Línea", "notificaccion-clientes@bbva.mx"),
    ],
)
def test_shared_subjects_and_senders_decode_exactly(post_webhook, shared_fixtures, name, subject, sender):
    email_post(post_webhook, (shared_fixtures / "emails" / name).read_bytes())

    row = Interaction.objects.get()
    assert row.subject == subject
    assert row.data["from"][0].lower() == sender


def test_arabic_rfc2047_vectors_decode_exactly_and_a_reply_chain_is_one_conversation(post_webhook):
    # when: three mails of one thread, the second with only an HTML part, the third with an attachment
    for name in ("thread_1.eml", "thread_2.eml", "thread_3.eml"):
        assert email_post(post_webhook, own(name)).status_code == 200

    # then
    first, second, third = Interaction.objects.order_by("occurred_at")
    assert first.subject == "هلا هلا شخبار؟"  # =?WINDOWS-1256?B?...?=
    assert second.subject == "في إيه يا باشا"  # =?UTF-8?B?...?=
    assert first.body == "طلبي لم يصل بعد"  # a windows-1256 base64 body
    assert first.customer.name == "فاطمة"
    assert second.body == "مرحبا\n\nstill waiting"  # HTML turned into text
    assert third.body == "Here is the receipt."
    assert third.data["attachments"] == [{"name": "receipt.pdf", "content_type": "application/pdf", "size": 21}]
    assert "JVBER" not in str(third.data)
    assert first.occurred_at == datetime(2025, 3, 3, 5, 45, tzinfo=UTC)  # +0330
    assert first.external_id == "thread-1@mail.example.com"
    assert len({first.conversation_id, second.conversation_id, third.conversation_id}) == 1
    assert len({first.customer_id, second.customer_id, third.customer_id}) == 1
    assert Conversation.objects.count() == 1
    assert list(first.customer.identities.values_list("kind", "value")) == [("email", "fatima@example.com")]


def test_a_reply_joins_its_thread_even_after_the_conversation_window(post_webhook, settings):
    settings.CONVERSATION_CONTINUE_HOURS = 1  # thread_3 arrives a day later: only threading keeps it in
    for name in ("thread_1.eml", "thread_2.eml", "thread_3.eml"):
        email_post(post_webhook, own(name))

    assert Conversation.objects.count() == 1


def test_same_message_twice_is_one_interaction(post_webhook):
    email_post(post_webhook, own("thread_1.eml"))
    email_post(post_webhook, own("thread_1.eml").replace(b"Received-Dummy", b"x") + b"\n")  # a re-sent copy

    assert Interaction.objects.count() == 1
    assert InboundEvent.objects.count() == 2


def test_auto_reply_is_a_system_event_not_the_customer_speaking(post_webhook):
    for name in ("thread_1.eml", "thread_2.eml", "thread_3.eml", "auto_reply.eml"):
        email_post(post_webhook, own(name))

    auto = Interaction.objects.get(external_id="ooo-1@mail.example.com")
    assert (auto.kind, auto.author_type, auto.direction) == ("event", "system", "inbound")
    assert auto.data["email_event"] == "auto_reply"
    thread = Interaction.objects.get(external_id="thread-3@mail.example.com")
    assert (auto.customer_id, auto.conversation_id) == (thread.customer_id, thread.conversation_id)


def test_bounce_is_a_system_event_on_the_failed_recipient(post_webhook):
    email_post(post_webhook, own("bounce.eml"))

    bounce = Interaction.objects.get()
    assert (bounce.kind, bounce.author_type) == ("event", "system")
    assert bounce.data["email_event"] == "bounce"
    assert list(bounce.customer.identities.values_list("kind", "value")) == [("email", "nobody@example.org")]
    assert bounce.customer.name == ""  # not the mailer daemon's name


def test_shared_delivery_status_bounce_is_a_system_event(post_webhook, shared_fixtures):
    email_post(post_webhook, (shared_fixtures / "emails" / "mail_parser" / "mail_malformed_2.eml").read_bytes())

    bounce = Interaction.objects.get()
    assert (bounce.kind, bounce.author_type, bounce.data["email_event"]) == ("event", "system", "bounce")


CHARSET_CASES = [
    ("windows-1256", "سلام، سفارش من کجاست؟"),  # Persian
    ("iso-8859-6", "مرحبا بكم"),  # Arabic
    ("koi8-r", "Где мой заказ?"),
    ("windows-1251", "Здравствуйте, заказ не пришёл"),
    ("iso-8859-5", "Посылка"),
    ("iso-8859-2", "Zażółć gęślą jaźń"),
    ("windows-1250", "Příliš žluťoučký kůň"),
    ("iso-8859-7", "Καλημέρα"),
    ("windows-1252", "Café – “déjà vu”"),
    ("iso-8859-15", "Prix : 10 €"),
    ("shift_jis", "注文が届きません"),
    ("iso-2022-jp", "こんにちは"),
    ("euc-kr", "주문이 도착하지 않았습니다"),
    ("big5", "我的訂單在哪裡"),
    ("gb2312", "我的订单在哪里"),
    ("utf-8", "Hello 👋 مرحبا שלום"),
]


@pytest.mark.parametrize("charset, text", CHARSET_CASES)
@pytest.mark.parametrize("encoding", ["B", "Q"])
def test_headers_and_bodies_in_any_charset_decode_exactly(post_webhook, charset, text, encoding):
    # given: a message whose subject and body are in `charset`
    encoded = text.encode(charset)
    if encoding == "B":
        word = f"=?{charset}?B?{base64.b64encode(encoded).decode()}?="
    else:
        word = f"=?{charset}?Q?" + "".join(
            chr(b) if chr(b).isalnum() and b < 128 else f"={b:02X}" for b in encoded
        ) + "?="
    raw = (
        f"From: customer@example.com\r\nSubject: {word}\r\nMessage-ID: <c-{charset}-{encoding}@example.com>\r\n"
        f"Date: Mon, 03 Mar 2025 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + base64.encodebytes(encoded)

    # when
    email_post(post_webhook, raw)

    # then
    row = Interaction.objects.get()
    assert row.subject == text
    assert row.body == text


def test_the_arabic_vector_with_a_trailing_right_to_left_mark_keeps_it(post_webhook):
    subject = "هلا\u200f"
    raw = (
        f"From: a@example.com\r\nSubject: =?windows-1256?B?{base64.b64encode(subject.encode('cp1256')).decode()}?=\r\n"
        "Message-ID: <rlm@example.com>\r\n\r\nhi\r\n"
    ).encode()

    email_post(post_webhook, raw)

    assert Interaction.objects.get().subject == subject


@pytest.mark.parametrize("how", ["missing", "wrong_path", "wrong_basic"])
def test_endpoint_secret_is_required_and_nothing_stored_without_it(post_webhook, how):
    if how == "missing":
        response = post_webhook(reverse("webhook-email"), own("thread_1.eml"), "message/rfc822")
    elif how == "wrong_path":
        response = email_post(post_webhook, own("thread_1.eml"), secret=EMAIL_SECRET + "x")
    else:
        auth = "Basic " + base64.b64encode(b"mta:wrong").decode()
        response = post_webhook(reverse("webhook-email"), own("thread_1.eml"), "message/rfc822", HTTP_AUTHORIZATION=auth)

    assert response.status_code == (401 if how == "missing" else 403)
    assert not InboundEvent.objects.exists()


def test_basic_auth_password_is_accepted(post_webhook):
    auth = "Basic " + base64.b64encode(f"mta:{EMAIL_SECRET}".encode()).decode()

    response = post_webhook(reverse("webhook-email"), own("thread_1.eml"), "message/rfc822", HTTP_AUTHORIZATION=auth)

    assert response.status_code == 200
    assert Interaction.objects.count() == 1


def test_empty_message_is_failed_with_reason_and_replayable(post_webhook):
    response = email_post(post_webhook, b"\r\n\r\n")

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert (event.status, event.error) == ("failed", "The email is empty.")
