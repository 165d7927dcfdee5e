"""Outgoing webhooks on the wire: the JSON a partner receives and its signature, as Stripe
and GitHub sign theirs. The `Hotline-Signature` header is `t=<unix time>,v1=<hex>`, where
the hex is HMAC-SHA256 with the webhook's secret over `<t>.<body>`; a partner recomputes it
and refuses a time more than five minutes off (README shows how)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from datetime import datetime

import aiohttp

from hotline import __version__
from hotline.service.cases import to_utc_text
from hotline.service.ports import WebhookEvent, WebhookUnreachable

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


class HttpPoster:
    """POSTs events with aiohttp: ten seconds at most, no redirects followed (a 3xx is not a
    delivery), the answer's body ignored."""

    def __init__(self, point: Callable[[], str], timeout: float = 10.0) -> None:
        self.point = point
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, secret: str, event: WebhookEvent, now: datetime) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
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
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise WebhookUnreachable(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
