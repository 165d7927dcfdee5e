"""A local stand-in for Twilio's Messages REST API (the one service we cannot reach from
here). The real twilio client talks to it through TWILIO_API_BASE; it answers with the
shapes Twilio documents, and can be told to misbehave for the next request."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token"


@dataclass
class FakeTwilio:
    # What the next create requests do, in order: "ok", "timeout" (stored, then no answer
    # in time), "500" (nothing stored), "500-stored" (stored, then a 500), or
    # (status, code) for a Twilio error such as (400, 21610).
    plan: list[Any] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    delay: float = 2.0
    pages_read: int = 0  # pages of the message list served
    # Called with each stored message and the create request's form before it is answered:
    # a status report that reaches the service before the send's answer does.
    before_answer: Callable[[dict[str, Any], dict[str, str]], Awaitable[None]] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        path = "/2010-04-01/Accounts/{account}/Messages.json"
        app.router.add_post(path, self.create)
        app.router.add_get(path, self.list)
        return app

    def _authorized(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def _error(self, status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status=status,
        )

    def _store(self, form: dict[str, str], account: str) -> dict[str, Any]:
        sid = "SM" + uuid.uuid4().hex
        now = format_datetime(datetime.now(UTC))
        message: dict[str, Any] = {
            "sid": sid,
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "status": "queued",
            "subresource_uris": {},
            "to": form.get("To"),
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
        }
        self.messages.append(message)
        return message

    async def create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
        if not form.get("To") or not (form.get("From") or form.get("MessagingServiceSid")):
            return self._error(400, 21604, "A 'To' and a 'From' are required")
        step = self.plan.pop(0) if self.plan else "ok"
        account = request.match_info["account"]
        if step == "500":
            return self._error(500, 20500, "Internal Server Error")
        if isinstance(step, tuple):
            status, code = step
            return self._error(status, code, f"Twilio error {code}")
        message = self._store(form, account)
        if self.before_answer is not None:
            await self.before_answer(message, form)
        if step == "timeout":
            await asyncio.sleep(self.delay)
        if step == "500-stored":
            return self._error(500, 20500, "Internal Server Error")
        return web.json_response(message, status=201)

    async def list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        to = request.query.get("To")
        found = [m for m in reversed(self.messages) if to is None or m["to"] == to]  # newest first
        account = request.match_info["account"]
        uri = f"/2010-04-01/Accounts/{account}/Messages.json"
        size = min(int(request.query.get("PageSize", "50")), 1000)
        page = int(request.query.get("Page", "0"))
        self.pages_read += 1
        start = page * size
        shown = found[start : start + size]
        more = start + size < len(found)
        query = "?" + urlencode(({"To": to} if to else {}) | {"PageSize": size, "Page": page + 1})
        return web.json_response(
            {
                "messages": shown,
                "end": start + max(len(shown) - 1, 0),
                "first_page_uri": uri,
                "next_page_uri": uri + query if more else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": None,
                "start": start,
                "uri": uri,
            }
        )
