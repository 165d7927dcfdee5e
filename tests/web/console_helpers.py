"""Signing in to the console from tests."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hotline import appkeys
from tests.helpers import Client

PASSWORD = "correct-horse-battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def give_password(app: web.Application, member: str, password: str = PASSWORD) -> None:
    await app[appkeys.PASSWORDS].set(app[appkeys.STORE], member, password, app[appkeys.CLOCK]())


async def sign_in(
    client: Client, member: str, password: str = PASSWORD, headers: dict[str, str] | None = None
) -> Any:
    page = await (await client.get("/console/login", headers=headers)).text()
    token = _TOKEN.search(page)
    assert token
    return await client.post(
        "/console/login",
        data={"csrf_token": token.group(1), "member": member, "password": password},
        allow_redirects=False,
        headers=headers,
    )


async def console_token(client: Client, path: str = "/console/cases") -> str:
    """The session's CSRF token, read from any console page."""
    page = await (await client.get(path)).text()
    token = _TOKEN.search(page)
    assert token, page[:500]
    return token.group(1)


async def act(client: Client, code: str, action: str, **fields: str) -> Any:
    token = await console_token(client, f"/console/cases/{code}")
    return await client.post(
        f"/console/cases/{code}/act",
        data={"csrf_token": token, "action": action, **fields},
        allow_redirects=False,
    )
