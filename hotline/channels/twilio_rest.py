"""Sending SMS through Twilio's REST API with the twilio library's async client."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from yarl import URL

from hotline.service.ports import Listed, Listing, ProviderError, ProviderUncertain, Sent
from hotline.service.settings import Twilio

REQUEST_TIMEOUT = 10.0  # seconds per REST request
PAGE_SIZE = 1000  # messages a page when reading the list back (Twilio's most)
READ_BACK_MAX = 20_000  # messages to one number read back, at most


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

    async def sent_to(self, to: str, since: datetime) -> Listing:
        """Twilio's list of messages to `to` is newest first: read back, a page at a time,
        until the messages are older than `since` (a member's number may have been texted
        hundreds of times since), READ_BACK_MAX messages at most."""
        listed: list[Listed] = []
        try:
            stream = await self.client.messages.stream_async(to=to, page_size=PAGE_SIZE)
            async for message in stream:
                created = message.date_created
                if created is not None and created < since:
                    break  # the rest are older still
                if message.sid:
                    status = str(message.status or "sent")
                    listed.append(Listed(message.sid, status, message.body or "", created))
                if len(listed) >= READ_BACK_MAX:  # complete only from the oldest read
                    return Listing(listed, created or datetime.max.replace(tzinfo=UTC))
        except TwilioRestException as exc:
            raise ProviderUncertain(f"Twilio answered {exc.status}: {exc.msg}") from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ProviderUncertain(f"no answer from Twilio: {exc!r}") from exc
        return Listing(listed, since)
