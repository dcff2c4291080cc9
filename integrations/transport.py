"""The HTTP POST of an outbound webhook, guarded against server-side request forgery.

The target host is resolved once, every address it resolves to is checked, and
the connection goes to the checked address (TLS still verifies the host name),
so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot reach an internal address. Redirects are not followed.
"""

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3

RESPONSE_EXCERPT_BYTES = 2048


class TargetRefused(Exception):
    """The URL points somewhere webhooks may not go; retrying will not help."""


class TransportError(Exception):
    """The request did not complete (DNS, connection, timeout); worth retrying."""


@dataclass
class PostResult:
    status: int
    excerpt: str
    headers: dict
    duration_ms: int


def url_check(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; TargetRefused otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise TargetRefused(f"Only http and https URLs receive webhooks, not {parts.scheme or 'none'!r}.")
    try:
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("The URL's port is not a number between 0 and 65535.") from exc
    if not parts.hostname:
        raise TargetRefused("The URL has no host.")
    if parts.username or parts.password:
        raise TargetRefused("The URL may not carry a user name or password.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address may not receive webhooks, or None when it is a public one."""
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.version == 6 and address.sixtofour:
        # 6to4 (2002::/16) carries an IPv4 address that a relay would reach on our behalf.
        embedded = address_refusal(address.sixtofour)
        if embedded:
            return f"{address} embeds {embedded}"
    for attribute, label in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, attribute):
            return f"{address} is a {label} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def host_literal_refusal(host: str) -> str | None:
    """For a host written as an IP literal or named localhost, why it is refused; None otherwise.

    Other names are resolved and checked at send time (their addresses can change).
    """
    name = host.strip("[]").rstrip(".").lower()
    # RFC 6761: localhost and every name under it are loopback, whatever DNS says.
    if name == "localhost" or name.endswith(".localhost"):
        return f"{name} is a loopback name"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return address_refusal(address)


def resolve(host: str, port: int) -> list:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransportError(f"cannot resolve {host}: {exc}") from exc
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TransportError(f"{host} resolves to no address")
    return addresses


def webhook_post(*, url: str, body: bytes, headers: dict, timeout: float, allow_private: bool) -> PostResult:
    """POST `body` to `url` once. Raises TargetRefused or TransportError."""
    scheme, host, port = url_check(url)
    addresses = resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = address_refusal(address)
            if reason:
                raise TargetRefused(f"{host} resolves to {reason}; webhooks go to public addresses only.")
    address = addresses[0]
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if scheme == "https" else 80
    host_header = f"[{host}]" if ":" in host else host
    if port != default_port:
        host_header = f"{host_header}:{port}"
    options = {}
    if scheme == "https":
        pool_class = urllib3.HTTPSConnectionPool
        options = {
            "server_hostname": host,
            "assert_hostname": host,
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": certifi.where(),
        }
    else:
        pool_class = urllib3.HTTPConnectionPool
    pool = pool_class(
        str(address), port, timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False, maxsize=1, **options
    )
    started = time.monotonic()
    try:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            excerpt = response.read(RESPONSE_EXCERPT_BYTES, decode_content=True)
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}") from exc
    except OSError as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        pool.close()
    duration_ms = int((time.monotonic() - started) * 1000)
    return PostResult(
        status=response.status,
        excerpt=excerpt.decode("utf-8", errors="replace"),
        headers=dict(response.headers),
        duration_ms=duration_ms,
    )
