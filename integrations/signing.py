"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

`webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`,
keyed with the base64-decoded secret that follows "whsec_". Several signatures
are separated by spaces (a rotation signs with the new and the old secret).
"""

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def webhook_secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def webhook_secret_key(secret: str) -> bytes:
    """The HMAC key of a secret; raises ValueError when it is not `whsec_<base64>`."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("A webhook secret starts with 'whsec_'.")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("A webhook secret is 'whsec_' followed by base64.") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError("A webhook secret holds between 24 and 64 bytes.")
    return key


def webhook_sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<signature>` entry."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(webhook_secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def webhook_signature_header(*, secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(webhook_sign(secret=s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets_)


def webhook_signature_verify(*, secret: str, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True when any `v1,` entry of the header matches; constant-time comparisons."""
    expected = webhook_sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body).encode()
    matched = False
    for entry in header.split():
        # Compare every entry, so timing does not reveal which one matched.
        matched |= hmac.compare_digest(entry.encode(), expected)
    return matched
