"""Kiosk devices (registered by heads; a device token lets a browser submit and nothing
else) and the source tags printed on QR-code posters."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from hotline.service.cases import to_utc_text
from hotline.service.i18n import N_, Refusal
from hotline.service.store.kiosks import Device, KioskRepo
from hotline.service.text import CONTROL, normalized

_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class BadKiosk(Refusal):
    """A kiosk device or poster tag that cannot be made; `field` names the problem."""


class Kiosks:
    def __init__(self, repo: KioskRepo) -> None:
        self.repo = repo

    async def register(self, name: str, actor: str, now: datetime) -> tuple[int, str]:
        """A new device; its token is returned once and only its hash is kept. Its name
        tells it apart from the other devices in use (a revoked one's may be taken again,
        by the device that replaces it)."""
        name = normalized(name)
        if not name or len(name) > 100:
            raise BadKiosk("name", N_("1 to 100 characters"))
        if CONTROL.search(name) or "\n" in name or "\t" in name:
            raise BadKiosk(
                "name", N_("Contains control characters or line breaks that are not allowed.")
            )
        token = secrets.token_urlsafe(32)
        device_id = await self.repo.add_device(name, _hash(token), actor, to_utc_text(now))
        if device_id is None:
            raise BadKiosk("name", N_("A kiosk in use is named %(name)s already."), name=name)
        return device_id, token

    async def device(self, token: str | None) -> Device | None:
        """The active device a token belongs to, if any."""
        if not token or len(token) > 100:
            return None
        return await self.repo.active_device(_hash(token))

    async def devices(self) -> list[Device]:
        return await self.repo.devices()

    async def revoke(self, device_id: int, actor: str, now: datetime) -> bool:
        return await self.repo.revoke(device_id, actor, to_utc_text(now))

    async def add_tag(self, tag: str, label: str, actor: str, now: datetime) -> str:
        tag = tag.strip().lower()
        label = label.strip()
        if not _TAG.match(tag):
            raise BadKiosk("tag", N_("lowercase letters, digits, - or _ (at most 64)"))
        if not label or len(label) > 100:
            raise BadKiosk("label", N_("1 to 100 characters"))
        if not await self.repo.add_tag(tag, label, actor, to_utc_text(now)):
            raise BadKiosk("tag", N_("%(tag)s exists already"), tag=tag)
        return tag

    async def tags(self) -> list[tuple[str, str]]:
        return await self.repo.tags()

    async def tag(self, tag: str) -> tuple[str, str] | None:
        """A source tag and its label; None for an unknown one, or one no tag can be."""
        return await self.repo.tag(tag) if _TAG.match(tag) else None
