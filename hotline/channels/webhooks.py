"""Outgoing webhooks on the wire: the JSON a partner receives and its signature, as Stripe
and GitHub sign theirs. The `Hotline-Signature` header is `t=<unix time>,v1=<hex>`, where
the hex is HMAC-SHA256 with the webhook's secret over `<t>.<body>`; a partner recomputes it
and refuses a time more than five minutes off (README shows how)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
from collections.abc import Callable
from datetime import datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from hotline import __version__
from hotline.service.cases import to_utc_text
from hotline.service.ports import WebhookEvent, WebhookUnreachable
from hotline.service.webhooks import nowhere

SIGNATURE = "Hotline-Signature"
TOLERANCE = 300  # seconds a partner should accept between the signature's time and its own


def body_of(event: WebhookEvent, point: str) -> bytes:
    return json.dumps(
        {
            "id": f"evt_{event.id}",
            "type": event.type,
            "created_at": to_utc_text(event.at),
            "point": point,
            "data": event.data,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance: int = TOLERANCE) -> bool:
    """What a partner does (README has it as a recipe): the header's time is recent and one
    of its v1 signatures is ours."""
    parts = [p.partition("=") for p in header.split(",")]
    stamps = [v for k, _, v in parts if k == "t"]
    if len(stamps) != 1 or not re.fullmatch(r"[0-9]{1,12}", stamps[0]):
        return False  # isdigit alone takes "²", which int() refuses; 400 nines overflow
    if abs(now - int(stamps[0])) > tolerance:
        return False
    expected = sign(secret, int(stamps[0]), body).rpartition("v1=")[2].encode()
    # Bytes: compare_digest raises on a str that is not ASCII.
    return any(
        k == "v1" and hmac.compare_digest(v.encode("utf-8", "replace"), expected)
        for k, _, v in parts
    )


class NowhereAddress(OSError):
    """A host name that leads only to addresses no partner can be at."""


class PartnerResolver(AbstractResolver):
    """Names resolved as aiohttp resolves them, less the addresses no partner can be at: a
    name that leads to 169.254.169.254 (the cloud's own metadata) is refused at sending as
    that address typed is refused at registration."""

    def __init__(self, resolver: AbstractResolver | None = None) -> None:
        self.resolver = resolver or aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.resolver.resolve(host, port, family)
        usable = [r for r in found if not nowhere(r["host"])]
        if not usable:  # aiohttp reports it as a connection error: retried, then given up
            raise NowhereAddress(f"{host} leads only to addresses no partner can be at")
        return usable

    async def close(self) -> None:
        await self.resolver.close()


class HttpPoster:
    """POSTs events with aiohttp: ten seconds at most, no redirects followed (a 3xx is not a
    delivery), the answer's body ignored, never to an address no partner can be at."""

    def __init__(
        self,
        point: Callable[[], str],
        timeout: float = 10.0,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.point = point
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, secret: str, event: WebhookEvent, now: datetime) -> int:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=PartnerResolver(self.resolver))
            self._session = aiohttp.ClientSession(timeout=self.timeout, connector=connector)
        # An address typed is not resolved (PartnerResolver never sees it): looked at here,
        # for a webhook registered before such addresses were refused.
        if (host := URL(url).host) and nowhere(host):
            raise WebhookUnreachable(f"NowhereAddress: {host} is no address a partner can be at")
        body = body_of(event, self.point())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"liaison-hotline/{__version__}",
            "Hotline-Event-Id": f"evt_{event.id}",
            "Hotline-Event": event.type,
            SIGNATURE: sign(secret, int(now.timestamp()), body),
        }
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                return resp.status
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error if isinstance(exc.os_error, NowhereAddress) else exc
            raise WebhookUnreachable(f"{type(cause).__name__}: {cause}") from None
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise WebhookUnreachable(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
