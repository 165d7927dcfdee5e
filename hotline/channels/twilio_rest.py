"""Sending SMS through Twilio's REST API with the twilio library's async client."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from yarl import URL

from hotline.service.ports import ProviderError, ProviderUncertain, Sent
from hotline.service.settings import Twilio

REQUEST_TIMEOUT = 10.0  # seconds per REST request


class _HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """twilio's async client with two fixes: it sends the Authorization header itself
    (aiohttp deprecates the BasicAuth object the library passes), and it enforces the
    timeout (the library hands aiohttp a bare number, which aiohttp 3.14 does not apply)."""

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the library's signature
        allow_redirects: bool = False,
    ) -> Any:
        if auth is not None:
            headers = {**(headers or {}), "Authorization": aiohttp.encode_basic_auth(*auth)}
        async with asyncio.timeout(timeout or self.timeout):
            return await super().request(
                method, url, params, data, headers, None, None, allow_redirects
            )


class TwilioProvider:
    """An SmsProvider backed by Twilio. `status_callback` is our /sms/twilio/status URL; each
    message's callback carries its outbox row as `?outbox=ID` (inside what Twilio signs)."""

    def __init__(
        self, settings: Twilio, status_callback: str | None, timeout: float = REQUEST_TIMEOUT
    ) -> None:
        assert settings.can_send and settings.sender
        self.http = _HttpClient(timeout=timeout)
        self.client = Client(settings.account_sid, settings.auth_token, http_client=self.http)
        if settings.api_base:
            # Simulators and tests: the same client, another base URL.
            self.client.api.base_url = settings.api_base
        self.sender = settings.sender
        self.status_callback = status_callback

    async def close(self) -> None:
        await self.http.close()

    async def send(self, to: str, body: str, *, ref: int) -> Sent:
        sender = (
            {"messaging_service_sid": self.sender}
            if self.sender.startswith("MG")
            else {"from_": self.sender}
        )
        callback = (
            {"status_callback": str(URL(self.status_callback).update_query(outbox=ref))}
            if self.status_callback
            else {}
        )
        try:
            message = await self.client.messages.create_async(
                to=to, body=body, **sender, **callback
            )
        except TwilioRestException as exc:
            if exc.status >= 500 or exc.status == 429:
                raise ProviderUncertain(f"Twilio answered {exc.status}: {exc.msg}") from exc
            raise ProviderError(exc.code, str(exc.msg)) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ProviderUncertain(f"no answer from Twilio: {exc!r}") from exc
        assert message.sid is not None
        return Sent(message.sid, str(message.status or "queued"))

    async def find(self, to: str, body: str, since: datetime) -> Sent | None:
        try:
            messages = await self.client.messages.list_async(to=to, limit=100)
        except TwilioRestException as exc:
            raise ProviderUncertain(f"Twilio answered {exc.status}: {exc.msg}") from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ProviderUncertain(f"no answer from Twilio: {exc!r}") from exc
        for message in messages:
            created = message.date_created
            matches = bool(message.body and message.body.endswith(body))  # trial prefix
            if matches and message.sid and (created is None or created >= since):
                return Sent(message.sid, str(message.status or "sent"))
        return None
