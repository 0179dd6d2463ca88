"""Webhook URLs may only reach the public internet (server-side request forgery guard).

Checked when an endpoint is created or changed, and again at every delivery: the host is
resolved, every address it resolves to must be public, and the connection goes to the
address that was checked (``GuardedBackend``): a name that resolves to a public address
for the check and to 127.0.0.1 for the connection (DNS rebinding) gets nowhere.
``COINPURSE_WEBHOOK_ALLOW_PRIVATE=true`` lifts the address rule, for development and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpcore

URL_MAX = 2048
RESOLVE_TIMEOUT_S = 5.0
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(Exception):
    """The URL may not be called; ``reason`` is a stable word for the API."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def check_url(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL without credentials; raise UnsafeUrl."""
    if len(url) > URL_MAX or not url.isascii() or any(c.isspace() for c in url):
        raise UnsafeUrl("invalid_url", f"the URL must be at most {URL_MAX} ASCII characters "
                        "without spaces (punycode for international names)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("invalid_url", "the URL cannot be read") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("scheme_not_allowed", "only http:// and https:// URLs are called")
    if not parts.hostname:
        raise UnsafeUrl("invalid_url", "the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("invalid_url", "the URL must not carry credentials")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def blocked(ip: IPAddress) -> bool:
    """Loopback, private, link-local (cloud metadata at 169.254.169.254), multicast,
    unspecified, reserved, shared: anything that is not a public unicast address, also
    when wrapped in an IPv6 form (mapped, 6to4, Teredo, NAT64)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None and blocked(inner):
            return True
    return (not ip.is_global or ip.is_multicast or ip.is_unspecified or ip.is_loopback
            or ip.is_link_local or ip.is_private or ip.is_reserved)


async def resolve(host: str, port: int, allow_private: bool) -> list[str]:
    """The host's addresses, each checked; raise UnsafeUrl if any may not be reached."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        try:
            infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S)
        except (OSError, TimeoutError, UnicodeError):
            raise UnsafeUrl("unresolvable", f"{host} does not resolve") from None
        found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not found:
            raise UnsafeUrl("unresolvable", f"{host} does not resolve")
    if not allow_private:
        bad = sorted({str(ip) for ip in found if blocked(ip)})
        if bad:
            raise UnsafeUrl("address_not_allowed",
                            f"{host} resolves to {', '.join(bad)}: not a public address")
    return [str(ip) for ip in dict.fromkeys(found)]


async def check(url: str, allow_private: bool) -> None:
    host, port = check_url(url)
    await resolve(host, port, allow_private)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking each host itself, then
    connecting to the checked address (TLS still verifies the URL's host name)."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port, self._allow_private)
        except UnsafeUrl as exc:
            raise httpcore.ConnectError(f"refused: {exc}") from None
        return await self._inner.connect_tcp(addresses[0], port, timeout=timeout,
                                             local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never called")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
