"""Where a webhook may go (SSRF guard).

Live endpoints: ``https://`` only, and every address the host resolves to must
be public. Test endpoints may also use ``http://``, but then only to loopback
(so tests and local development work). The check runs when an endpoint is
registered and again by the HTTP client (``node.webhooks.http``) for every new
connection: the connection is opened to the very address that was checked, so
a DNS answer that changes after registration (rebinding) cannot reach an
internal address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from node.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The URL or the address it resolves to is not allowed; the message says why."""


@dataclass(frozen=True)
class TargetPolicy:
    name: str
    public: bool
    loopback: bool

    def check(self, address: IPAddress) -> None:
        kind = address_kind(address)
        if (kind == "public" and self.public) or (kind == "loopback" and self.loopback):
            return
        raise TargetRefused(f"address {address} is {kind}, not allowed for this endpoint")


LIVE = TargetPolicy("live", public=True, loopback=False)
TEST_HTTPS = TargetPolicy("test-https", public=True, loopback=True)
TEST_HTTP = TargetPolicy("test-http", public=False, loopback=True)


def address_kind(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private:
        return "private"
    if address.is_multicast or address.is_unspecified or address.is_reserved or not address.is_global:
        return "reserved"
    return "public"


def test_loopback_allowed(settings: Settings) -> bool:
    if settings.webhook_test_loopback is not None:
        return settings.webhook_test_loopback
    return not settings.is_production


def policy_for(url: str, mode: str, settings: Settings) -> TargetPolicy:
    """The policy a URL is held to, or ``TargetRefused`` for a URL no policy allows."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("URL is not valid") from exc
    if not parts.hostname:
        raise TargetRefused("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("URL must not carry credentials")
    if port == 0:
        raise TargetRefused("URL port is not valid")
    loopback = mode == "test" and test_loopback_allowed(settings)
    if parts.scheme == "https":
        return TEST_HTTPS if loopback else LIVE
    if parts.scheme == "http" and loopback:
        return TEST_HTTP
    raise TargetRefused("URL must use HTTPS")


async def resolve(host: str, port: int) -> list[IPAddress]:
    host = host.strip("[]")
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"host {host} does not resolve") from exc
    seen: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    if not seen:
        raise TargetRefused(f"host {host} does not resolve")
    return seen


def check_all(policy: TargetPolicy, addresses: Iterable[IPAddress]) -> None:
    # a host with one forbidden address is refused whole: it could be served any of them
    for address in addresses:
        policy.check(address)


async def check_url(url: str, mode: str, settings: Settings) -> TargetPolicy:
    """Registration-time check: scheme, host, and every address it resolves to now."""
    policy = policy_for(url, mode, settings)
    parts = urlsplit(url)
    assert parts.hostname is not None
    check_all(policy, await resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    return policy
