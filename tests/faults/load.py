"""Load and bookkeeping for the fault tests: clients on every intake channel of a running
`hotline serve`, each submission's idempotency key and the code it got (or nothing)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from twilio.request_validator import RequestValidator

from hotline.service.settings import DEMO_TWILIO_AUTH_TOKEN

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_CODE = re.compile(r"[23456789ABCDEFGHJKMNPQRSTWXYZ]{7}")


@dataclass
class Ledger:
    """What the submitters were told: key -> code. A key asked twice must get one code."""

    codes: dict[str, str] = field(default_factory=dict)
    refused: int = 0  # no code given (connection refused while the service restarted)
    conflicts: list[str] = field(default_factory=list)

    def record(self, key: str, code: str) -> None:
        if self.codes.setdefault(key, code) != code:
            self.conflicts.append(f"{key}: {self.codes[key]} then {code}")


def register_kiosk(database: Path) -> str:
    """A kiosk device made the way a head makes one (only the token's hash is stored)."""
    token = secrets.token_urlsafe(32)
    with sqlite3.connect(database) as db:
        db.execute(
            "INSERT INTO kiosk_devices (name, token_hash, created_by, created_at)"
            " VALUES ('大厅', ?, 'shen', '2026-11-24T00:00:00.000000Z')",
            (hashlib.sha256(token.encode()).hexdigest(),),
        )
    return token


class Load:
    def __init__(self, base: str, kiosk_token: str | None = None) -> None:
        self.base = base
        self.kiosk_token = kiosk_token
        self.ledger = Ledger()
        self.sent = 0

    async def _form_token(self, session: aiohttp.ClientSession, path: str) -> str:
        async with session.get(self.base + path) as resp:
            found = _TOKEN.search(await resp.text())
        assert found, f"no form at {path}"
        return found.group(1)

    async def web(self, session: aiohttp.ClientSession, key: str, path: str = "/submit") -> None:
        token = await self._form_token(session, path)
        data = {"csrf_token": token, "text": f"负载测试 {key}", "idem": key}
        async with session.post(
            self.base + path, data=data, headers={"Accept": "application/json"}
        ) as resp:
            if resp.status == 201:
                self.ledger.record(key, (await resp.json())["code"])
            else:
                raise AssertionError(f"{path} answered {resp.status}: {await resp.text()}")

    async def sms(self, session: aiohttp.ClientSession, key: str) -> None:
        params = {"MessageSid": key, "From": f"+86139{int(key[-8:], 16) % 10**8:08d}",
                  "Body": f"短信负载 {key}", "NumMedia": "0"}  # fmt: skip
        url = self.base + "/sms/twilio"
        signature = RequestValidator(DEMO_TWILIO_AUTH_TOKEN).compute_signature(url, params)
        async with session.post(
            url, data=params, headers={"X-Twilio-Signature": signature}
        ) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise AssertionError(f"/sms/twilio answered {resp.status}: {text}")
            found = _CODE.search(text.split("编号", 1)[-1])
            assert found, text
            self.ledger.record("sms:" + key, found.group(0))

    async def one(self, session: aiohttp.ClientSession, i: int) -> None:
        kind = ("web", "sms", "kiosk")[i % 3] if self.kiosk_token else ("web", "sms")[i % 2]
        key = uuid.uuid4().hex
        for attempt in range(2):  # a client retry with the same key must get the same code
            try:
                if kind == "web":
                    await self.web(session, key)
                elif kind == "kiosk":
                    await self.web(session, key, "/kiosk")
                else:
                    await self.sms(session, "SM" + key)
            except (aiohttp.ClientConnectionError, TimeoutError):
                if attempt:
                    self.ledger.refused += 1
                await asyncio.sleep(0.2)
                continue
            if attempt or i % 5:  # every fifth submission is retried once even when it worked
                return

    async def run(self, seconds: float, concurrency: int = 8, pause: float = 0.0) -> None:
        """Submit from `concurrency` clients for about `seconds`, each pausing `pause`
        seconds between submissions."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        counter = iter(range(10**9))

        async def client() -> None:
            jar = aiohttp.CookieJar(unsafe=True)
            cookies = {"hotline_kiosk": self.kiosk_token} if self.kiosk_token else {}
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(
                cookie_jar=jar, cookies=cookies, timeout=timeout
            ) as session:
                while loop.time() < deadline:
                    await self.one(session, next(counter))
                    self.sent += 1
                    await asyncio.sleep(pause)

        await asyncio.gather(*(client() for _ in range(concurrency)))


def stored_codes(database: Path) -> dict[str, int]:
    """code -> how many cases carry it (the schema makes more than one impossible)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT code, count(*) FROM cases GROUP BY code").fetchall()
    return {code: n for code, n in rows}


async def wait_stored(database: Path, ledger: Ledger, within: float) -> tuple[set[str], float]:
    """Wait until every code handed out is a stored case; (missing codes, seconds taken)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    wanted = set(ledger.codes.values())
    missing = wanted
    while loop.time() - began < within:
        missing = wanted - set(stored_codes(database))
        if not missing:
            break
        await asyncio.sleep(0.2)
    return missing, loop.time() - began
