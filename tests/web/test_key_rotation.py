"""Rotating HOTLINE_SECRET_KEY: the new key signs and seals; a previous one, listed in
HOTLINE_SECRET_KEY_PREVIOUS, is still read — forms open in a browser, subscribed duty
calendars, webhook secrets — until it is dropped; `serve` seals those secrets again with
the new key when it starts."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import create_app
from hotline.service.sealing import Sealer, Unsealable, sealed
from hotline.service.settings import Settings
from hotline.web.csrf import COOKIE
from hotline.web.duty import feed_token
from tests.helpers import Client, Clock, form_fields

NEW = "the-new-secret-key-after-a-leak"
JSON = {"Accept": "application/json"}


def test_previous_keys_are_read_from_the_environment(tmp_path: Path) -> None:
    env = {"HOTLINE_DATA_DIR": str(tmp_path), "HOTLINE_SECRET_KEY": NEW}
    assert Settings.from_env(env, demo=True).secret_keys == (NEW,)
    listed = " old-2 , old-1,,old-2, " + NEW  # spaces, blanks, repeats and the key itself
    rotated = Settings.from_env(env | {"HOTLINE_SECRET_KEY_PREVIOUS": listed}, demo=True)
    assert rotated.secret_key == NEW and rotated.previous_secret_keys == ("old-2", "old-1")
    assert rotated.secret_keys == (NEW, "old-2", "old-1")


def test_a_sealer_opens_what_a_previous_key_sealed_and_seals_it_again() -> None:
    old, new = Sealer("old-key"), Sealer(NEW, ["old-key"])
    by_old = old.seal("whsec_partner")
    assert new.unseal(by_old) == "whsec_partner"
    resealed = new.resealed(by_old)
    assert resealed is not None and sealed(resealed)
    assert Sealer(NEW).unseal(resealed) == "whsec_partner"  # the new key alone opens it now
    assert new.resealed(resealed) is None  # already with the current key: left as it is
    clear = new.resealed("whsec_partner")  # stored in clear by an older version
    assert clear is not None and Sealer(NEW).unseal(clear) == "whsec_partner"
    with pytest.raises(Unsealable):
        Sealer(NEW).unseal(by_old)  # the previous key dropped: it can no longer be read
    with pytest.raises(Unsealable):
        Sealer(NEW, ["yet-another"]).resealed(by_old)


@pytest.fixture
async def rotated(settings: Settings, clock: Clock) -> AsyncIterator[Client]:
    """The same point (database, Redis) served after the key was rotated: NEW signs, the
    fixtures' key is the previous one."""
    assert settings.secret_key != NEW
    changed = dataclasses.replace(
        settings, secret_key=NEW, previous_secret_keys=(settings.secret_key,)
    )
    async with TestClient(TestServer(create_app(changed, clock=clock))) as test_client:
        yield test_client


async def _post_form(client: Client, fields: dict[str, str], cookie: str) -> ClientResponse:
    client.session.cookie_jar.update_cookies({COOKIE: cookie})
    data = fields | {"text": "厂区门口路灯不亮", "phone": "+8613900000009"}
    return await client.post("/submit", data=data, headers=JSON)


async def test_a_form_opened_before_the_rotation_is_still_accepted(
    client: Client, rotated: Client, settings: Settings
) -> None:
    fields = await form_fields(client)  # signed with the previous key
    cookie = cookie_of(client)
    resp = await _post_form(rotated, fields, cookie)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["code"]
    fresh = await form_fields(rotated)  # signed with the new key from now on
    new_only = dataclasses.replace(settings, secret_key=NEW)
    async with TestClient(TestServer(create_app(new_only))) as after:
        resp = await _post_form(after, fresh, cookie_of(rotated))
        assert resp.status == 201, await resp.text()
        # Once the previous key is dropped, a form it signed is refused (403), not a 500.
        resp = await _post_form(after, await refreshed_idem(after, fields), cookie)
        assert resp.status == 403
        assert "invalid" in (await resp.json())["errors"]["csrf_token"]


def cookie_of(client: Client) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value


async def refreshed_idem(client: Client, fields: dict[str, str]) -> dict[str, str]:
    """`fields` with a new one-time key (the old one was used): only the token is old."""
    return fields | {"idem": (await form_fields(client))["idem"]}


async def test_a_duty_calendar_subscribed_before_keeps_working_until_the_key_is_dropped(
    rotated: Client, settings: Settings
) -> None:
    old, new = feed_token(settings.secret_key), feed_token(NEW)
    for token in (old, new):
        resp = await rotated.get(f"/duty.ics?token={token}")
        assert resp.status == 200 and resp.content_type == "text/calendar"
    assert (await rotated.get("/duty.ics?token=" + feed_token("guess"))).status == 404
    new_only = dataclasses.replace(settings, secret_key=NEW)
    async with TestClient(TestServer(create_app(new_only))) as after:
        assert (await after.get(f"/duty.ics?token={new}")).status == 200
        assert (await after.get(f"/duty.ics?token={old}")).status == 404
