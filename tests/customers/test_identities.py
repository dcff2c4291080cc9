import pytest

from customers.identities import IdentityInvalid, identity_guess, identity_normalize


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("email", "  Lisa.Smith@Example.COM ", "lisa.smith@example.com"),
        ("email", "mailto:info@Bücher.de", "info@xn--bcher-kva.de"),
        ("email", "user@\u0645\u062b\u0627\u0644.\u0625\u062e\u062a\u0628\u0627\u0631", "user@xn--mgbh0fb.xn--kgbechtv"),
        ("phone", "+49 151 1234-5678", "+4915112345678"),
        ("phone", "(201) 555-0123", "+12015550123"),
        ("phone", "0049 151 12345678", "+4915112345678"),
        ("phone", "tel:+44 20 7946 0958", "+442079460958"),
        ("whatsapp", "whatsapp:+14155238886", "+14155238886"),
        ("whatsapp", "4915112345678", "+4915112345678"),  # Meta's wa_id: international digits, no '+'
        ("whatsapp", "972987654321", "+972987654321"),  # possible though outside phonenumbers' known ranges
        ("facebook", "1234567890", "1234567890"),
        ("facebook", 1234567890, "1234567890"),
        ("instagram", "@Lisa_Shop", "lisa_shop"),
        ("instagram", "17841400000000000", "17841400000000000"),
        ("twitter", "@LisaSmith", "lisasmith"),
        ("telegram", "Lisa_S", "lisa_s"),
        ("chat", " visitor-AbC ", "visitor-AbC"),
        ("external", "CRM-001", "CRM-001"),
        ("email", "\u200fali@example.com\u200e", "ali@example.com"),
    ],
)
def test_identities_are_normalised(kind, raw, expected):
    assert identity_normalize(kind, raw) == expected


def test_persian_digits_with_region_ir(settings):
    settings.DEFAULT_PHONE_REGION = "IR"

    assert identity_normalize("phone", "۰۹۱۲۳۴۵۶۷۸۹") == "+989123456789"
    assert identity_normalize("phone", "٠٩١٢٣٤٥٦٧٨٩") == "+989123456789"


@pytest.mark.parametrize(
    ("kind", "raw", "code"),
    [
        ("email", "lisa", "invalid_email"),
        ("email", "lisa@", "invalid_email"),
        ("email", "li sa@example.com", "invalid_email"),
        ("email", "lisa@localhost", "invalid_email"),
        ("email", "", "blank"),
        ("phone", "12345", "invalid_phone"),
        ("phone", "call me", "invalid_phone"),
        ("facebook", "abc", "invalid_id"),
        ("twitter", "has space", "invalid_handle"),
        ("chat", "two words", "invalid_id"),
        ("fax", "123", "invalid_kind"),
        ("email", 42, "invalid_type"),
    ],
)
def test_invalid_identities_say_why(kind, raw, code):
    with pytest.raises(IdentityInvalid) as exc:
        identity_normalize(kind, raw)
    assert exc.value.code == code


@pytest.mark.parametrize(
    "domain",
    ["Example.COM", "example.com.", "xn--bcher-kva.de", "a.b.c.d.e.f", "x" * 63 + ".io", "1.2",
     "a..b", ".com", "x" * 64 + ".com", "a." + "b" * 70, "com"],
)
def test_an_ascii_domain_is_normalised_as_the_idna_codec_would(domain):
    # The ASCII fast path must accept and reject exactly what encoding with IDNA does.
    try:
        expected = "lisa@" + domain.rstrip(".").encode("idna").decode("ascii").lower()
        labels = expected.partition("@")[2].split(".")
        if len(labels) < 2:
            expected = "invalid_email"
    except UnicodeError:
        expected = "invalid_email"

    try:
        normalised = identity_normalize("email", f"Lisa@{domain}")
    except IdentityInvalid as exc:
        normalised = exc.code

    assert normalised == expected


def test_a_search_term_is_tried_as_each_kind_it_could_be():
    guesses = identity_guess("+49 151 12345678")

    assert ("phone", "+4915112345678") in guesses
    assert ("whatsapp", "+4915112345678") in guesses


@pytest.mark.parametrize(("kind", "raw", "expected"), [
    ("email", "  Lisa.Smith@Example.COM ", "lisa.smith@example.com"),
    ("phone", "+49 151 1234-5678", "+4915112345678"),
    ("instagram", "@Lisa_Shop", "lisa_shop"),
])
def test_normalising_twice_changes_nothing(kind, raw, expected):
    assert identity_normalize(kind, identity_normalize(kind, raw)) == expected


@pytest.mark.django_db
def test_the_ingest_service_normalises_identities_whoever_calls_it(settings):
    from datetime import datetime, timezone

    from customers.models import Identity
    from interactions.ingest import IdentityIn, IngestItem
    from interactions.services import interactions_ingest

    # given: a caller that hands over identities as a provider sent them
    settings.DEFAULT_PHONE_REGION = "IR"
    at = datetime(2026, 3, 1, tzinfo=timezone.utc)

    def item(external_id, *identities):
        return IngestItem(source="sms", external_id=external_id, channel="sms", kind="message", direction="inbound",
                          author_type="customer", occurred_at=at, identities=[IdentityIn(k, v) for k, v in identities])

    # when
    first, second, bad = interactions_ingest(items=[
        item("1", ("phone", "۰۹۱۲ ۳۴۵ ۶۷۸۹")),
        item("2", ("phone", "+98 912 345 6789"), ("email", "Sara@Example.com")),
        item("3", ("phone", "not a number")),
    ])

    # then: one customer, normalised identities, the bad item rejected with its reason and nothing stored for it
    assert (first.status, second.status, bad.status) == ("created", "created", "rejected")
    assert first.interaction.customer_id == second.interaction.customer_id
    assert sorted(Identity.objects.values_list("kind", "value")) == [("email", "sara@example.com"),
                                                                     ("phone", "+989123456789")]
    assert list(bad.errors) == ["identities[0]"]
