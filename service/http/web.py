"""HTTP plumbing shared by the routes: bounded body reading, Bearer tokens, client IP, JSON out."""

from __future__ import annotations

import functools
import ipaddress
import json
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from service.errors import MalformedRequest, NotAuthenticated, PayloadTooLarge, TokenInvalid
from service.http.inputs import parse_json_object

# On every answer the app makes (JSON, errors, 204/205, CORS preflights): token responses
# must never be cached and nothing else here is cacheable either; a JSON body is never sniffed
# into HTML, runs nothing, loads nothing, is never framed and leaks no Referer (OWASP REST
# Security and HTTP Headers cheat sheets, ASVS V14.4). The docs page sends its own CSP.
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
               "Referrer-Policy": "no-referrer"}


def json_response(data: Any, status_code: int = 200, headers: dict[str, str] | None = None,
                  background: BackgroundTask | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "backslashreplace")
    return Response(body, status_code, headers={**API_HEADERS, **(headers or {})},
                    media_type="application/json", background=background)


def empty_response(status_code: int) -> Response:
    return Response(b"", status_code, headers=API_HEADERS)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing with 413 past `limit` bytes without reading it all into memory."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedRequest("Invalid Content-Length header.")
        if int(declared) > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> dict[str, Any]:
    limit = request.app.state.settings.server.max_body_bytes
    raw = await read_body(request, limit)
    return parse_json_object(raw, request.headers.get("content-type"))


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise NotAuthenticated()
    token = token.strip()
    if not token or " " in token:
        raise TokenInvalid("malformed", "Invalid Authorization header.").for_bearer()
    return token


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_ip(request: Request, trusted_proxies: tuple[str, ...]) -> str:
    """The socket peer, or the nearest untrusted X-Forwarded-For hop when the peer is a proxy.

    Addresses come out in one spelling (ip_address's, an IPv4-mapped IPv6 address as IPv4), so
    rate limits count an address once however it was written. A hop that is not an address
    ends the walk: what lies left of it was written by someone unknown, so the client is taken
    to be the last trusted hop, never a text of the client's choosing."""
    peer_text = request.client.host if request.client else "unknown"
    peer = parse_ip(peer_text)
    if peer is None:
        return peer_text
    if not trusted_proxies or not _is_trusted(peer, trusted_proxies):
        return str(peer)
    nearest = peer
    # Several X-Forwarded-For fields are one list in order (RFC 9110 5.3); reading only the
    # first would believe a client's own field over the one its proxy added after it.
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    for hop in reversed(forwarded.split(",")):
        if not hop.strip():
            continue
        address = parse_ip(hop)
        if address is None:
            break
        if not _is_trusted(address, trusted_proxies):
            return str(address)
        nearest = address
    return str(nearest)


def parse_ip(text: str) -> IPAddress | None:
    """An address in its one canonical form, or None when `text` is not one. Accepts what
    proxies write: an optional port (`1.2.3.4:80`, `[2001:db8::1]:80`), a zone (`%eth0`,
    dropped); an IPv4-mapped IPv6 address is its IPv4 address."""
    text = text.strip()
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or (port and not (port[0] == ":" and port[1:].isdigit())):
            return None
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        return ipaddress.IPv6Address(int(address))  # without its zone
    return address


def _is_trusted(ip: IPAddress, trusted: tuple[str, ...]) -> bool:
    return any(ip in network for network in _networks(trusted))


@functools.lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network,
                                                 ...]:
    """[server] trusted_proxies parsed once (a header of many hops was parsed once per hop);
    an entry that is no network trusts nobody."""
    networks = []
    for entry in trusted:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return tuple(networks)
