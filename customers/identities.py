"""Normalising identities, so the same person is found whatever way they wrote it."""

import re
import unicodedata

import phonenumbers
from django.conf import settings

from customers.models import Identity


class IdentityInvalid(ValueError):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


# Persian and Arabic-Indic digits, and full-width ones, read as ASCII digits.
_DIGITS = {ord(c): str(i) for i, c in enumerate("۰۱۲۳۴۵۶۷۸۹")}
_DIGITS.update({ord(c): str(i) for i, c in enumerate("٠١٢٣٤٥٦٧٨٩")})
_DIGITS.update({ord(c): str(i) for i, c in enumerate("０１２３４５６７８９")})
# Marks a copy-paste brings along: bidi controls, zero-width characters.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"))

_EMAIL_LOCAL = re.compile(r"^[^\s@\"(),:;<>\[\\\]]{1,64}$")
_HANDLE = re.compile(r"^[a-z0-9._]{1,64}$")
_NUMERIC_ID = re.compile(r"^[0-9]{1,32}$")
_TOKEN = re.compile(r"^[^\s]{1,255}$")
_WA_ID = re.compile(r"^[1-9][0-9]{6,14}$")

MAX_VALUE_LENGTH = 320


def _clean(value):
    if not isinstance(value, str):
        raise IdentityInvalid("invalid_type", "An identity value must be a string.")
    if not value.isascii():  # ASCII is already NFKC and holds no invisible marks
        value = unicodedata.normalize("NFKC", value).translate(_INVISIBLE)
    value = value.strip()
    if not value:
        raise IdentityInvalid("blank", "An identity value must not be blank.")
    if len(value) > MAX_VALUE_LENGTH:
        raise IdentityInvalid("too_long", f"An identity value has at most {MAX_VALUE_LENGTH} characters.")
    return value


def normalize_email(value):
    value = _clean(value)
    if value.lower().startswith("mailto:"):
        value = value[7:]
    local, sep, domain = value.rpartition("@")
    if not sep or not local or not domain:
        raise IdentityInvalid("invalid_email", f"{value!r} is not an email address.")
    if not _EMAIL_LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise IdentityInvalid("invalid_email", f"{value!r} is not an email address.")
    domain = domain.rstrip(".")
    if domain.isascii():
        # What the IDNA codec gives an ASCII name, without its per-label Python work; the checks below
        # are the ones it would make.
        domain = domain.lower()
    else:
        try:
            domain = domain.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise IdentityInvalid("invalid_email", f"The domain of {value!r} is not a valid domain name.") from exc
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels) or any(len(label) > 63 for label in labels):
        raise IdentityInvalid("invalid_email", f"The domain of {value!r} is not a valid domain name.")
    return f"{local.lower()}@{domain}"


def _phone_strip(value):
    value = _clean(value).translate(_DIGITS)
    for prefix in ("tel:", "whatsapp:", "sms:"):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
    if value.startswith("00"):
        value = "+" + value[2:]
    return value


def _phone_parse(value, region):
    try:
        return phonenumbers.parse(value, region or settings.DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise IdentityInvalid("invalid_phone", f"{value!r} is not a phone number.") from exc


def normalize_phone(value, region=None):
    value = _phone_strip(value)
    number = _phone_parse(value, region)
    if not phonenumbers.is_valid_number(number):
        raise IdentityInvalid("invalid_phone", f"{value!r} is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_whatsapp(value, region=None):
    """A WhatsApp id is a number WhatsApp itself has verified, sent as international digits
    without '+' ("wa_id"): accept any possible number, not only those in phonenumbers' ranges."""
    value = _phone_strip(value)
    if _WA_ID.match(value):
        value = "+" + value
    number = _phone_parse(value, region)
    if not phonenumbers.is_possible_number(number):
        raise IdentityInvalid("invalid_phone", f"{value!r} is not a phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_handle(value):
    """Twitter, Instagram and Telegram handles: no '@', case-insensitive."""
    value = _clean(value).lstrip("@").lower()
    if not _HANDLE.match(value):
        raise IdentityInvalid("invalid_handle", f"{value!r} is not a handle (letters, digits, '.' and '_').")
    return value


def normalize_numeric_id(value):
    """Facebook page-scoped ids and other provider ids made of digits."""
    value = _clean(str(value) if isinstance(value, int) else value)
    if not _NUMERIC_ID.match(value):
        raise IdentityInvalid("invalid_id", f"{value!r} is not a numeric id.")
    return value


def normalize_token(value):
    """Chat visitor ids and external CRM ids: kept exactly, case included."""
    value = _clean(str(value) if isinstance(value, int) else value)
    if not _TOKEN.match(value):
        raise IdentityInvalid("invalid_id", f"{value!r} must be one word without spaces.")
    return value


def normalize_instagram(value):
    """Instagram-scoped ids are numeric; usernames follow the handle rules."""
    value = _clean(str(value) if isinstance(value, int) else value)
    return value if _NUMERIC_ID.match(value) else normalize_handle(value)


_NORMALIZERS = {
    Identity.Kind.EMAIL: normalize_email,
    Identity.Kind.PHONE: normalize_phone,
    Identity.Kind.WHATSAPP: normalize_whatsapp,
    Identity.Kind.FACEBOOK: normalize_numeric_id,
    Identity.Kind.INSTAGRAM: normalize_instagram,
    Identity.Kind.TWITTER: normalize_handle,
    Identity.Kind.TELEGRAM: normalize_handle,
    Identity.Kind.CHAT: normalize_token,
    Identity.Kind.EXTERNAL: normalize_token,
}

IDENTITY_KINDS = tuple(_NORMALIZERS)


# Normalising is pure but phone parsing costs ~0.15 ms, and the same people write again and again;
# bulk ingestion and each caller's re-check hit this instead. Bounded; cleared when full.
_NORMALISED = {}
NORMALISED_CACHE_SIZE = 100_000
_PHONE_KINDS = {Identity.Kind.PHONE, Identity.Kind.WHATSAPP}


def identity_normalize(kind, value):
    """(kind, value) as stored and matched; raises IdentityInvalid with a reason."""
    normalizer = _NORMALIZERS.get(kind)
    if normalizer is None:
        raise IdentityInvalid("invalid_kind", f"Unknown identity kind {kind!r}; known: {', '.join(IDENTITY_KINDS)}.")
    if type(value) not in (str, int):  # bool is an int, but True must not hit the entry for 1
        return normalizer(value)
    region = settings.DEFAULT_PHONE_REGION if kind in _PHONE_KINDS else None
    key = (kind, value, region)
    normalised = _NORMALISED.get(key)
    if normalised is None:
        normalised = normalizer(value)
        if len(_NORMALISED) >= NORMALISED_CACHE_SIZE:
            _NORMALISED.clear()
        _NORMALISED[key] = normalised
        _NORMALISED[(kind, normalised, region)] = normalised  # normalising the result again is a hit
    return normalised


def identity_guess(value):
    """Normalised (kind, value) pairs a free-text search term could mean."""
    found = []
    for kind in (Identity.Kind.EMAIL, Identity.Kind.PHONE):
        try:
            found.append((kind, identity_normalize(kind, value)))
        except IdentityInvalid:
            pass
    if any(kind == Identity.Kind.PHONE for kind, _ in found):
        found.append((Identity.Kind.WHATSAPP, dict(found)[Identity.Kind.PHONE]))
    try:
        cleaned = _clean(value)
    except IdentityInvalid:
        return found
    found.append((None, cleaned))
    if cleaned.lstrip("@").lower() != cleaned:
        found.append((None, cleaned.lstrip("@").lower()))
    return found
