"""Partners' webhooks: a head registers a URL and a secret; every case event a submitter
could see (workflow.PUBLIC_EVENTS) is offered to each active webhook in the write that
records it (store/webhooks.py), and sent by the sender, signed, with retries and backoff.

A delivery row exists once per (webhook, event), and one that got a 2xx is never sent
again. A POST whose outcome is unknown (a timeout, a sender that died mid-POST) is retried
with the same event id, which the partner uses to drop a repeat."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from yarl import URL

from hotline.service.cases import to_utc_text
from hotline.service.config import PointConfig
from hotline.service.i18n import N_, Refusal
from hotline.service.links import Links
from hotline.service.ports import WebhookEvent, WebhookPoster, WebhookUnreachable
from hotline.service.sealing import Sealer, Unsealable
from hotline.service.store import Store
from hotline.service.store.webhooks import DeliveryRow, Due, Outcome, Taken, Webhook

log = logging.getLogger(__name__)

# The wait before each retry; after the last, the delivery is given up (failed): about a
# day of trying, as partners' outages go.
BACKOFF = tuple(
    timedelta(seconds=s) for s in (30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
)
AT_ONCE = 8  # concurrent POSTs from one sender
PER_WEBHOOK = 4  # of them to one partner: a slow one leaves the other partners their turn
NOT_TRIED = "not tried: another delivery to this webhook failed just before"
# While a round is under way its deliveries still in hand are stamped this often, so they
# never look stuck (STUCK_AFTER) to a sweep, however long the round takes.
IN_HAND_EVERY = 30.0
CLAIM = 50  # deliveries claimed per write
STUCK_AFTER = timedelta(minutes=2)  # a `sending` row this old lost its sender
NAME_MAX, URL_MAX = 64, 500
UNSEALABLE = (
    "signing secret sealed with a key this process does not have: set the same"
    " HOTLINE_SECRET_KEY (and HOTLINE_SECRET_KEY_PREVIOUS while rotating it) on every"
    " process, or register the webhook again"
)


class BadWebhook(Refusal):
    """A webhook that cannot be registered; `field` names the problem."""


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
# Clouds' metadata services at addresses of no special range: Alibaba Cloud's (in the
# shared 100.64/10), AWS's over IPv6. (169.254.169.254, everyone's, is link-local.)
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("100.100.100.200", "fd00:ec2::254"))
# A last label that makes a host an IPv4 address to a URL parser (WHATWG: "ends in a number").
_NUMBER_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)\Z", re.IGNORECASE)


def _usable_host(host: str) -> bool:
    """An IP address, or a name of DNS labels (an internationalized one as IDNA). A name
    whose last label is a number (2852039166, 0251.0376.0251.0376, 0x7f.1) is an IPv4
    address in an old form, which a client refuses to send to (aiohttp) or reads as another
    address than shown (the resolver): refused."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return True
    try:
        name = host.encode("idna").decode("ascii")
    except UnicodeError:  # an empty label (a..org), one over 63 characters
        return False
    labels = name.split(".")
    if _NUMBER_LABEL.match(labels[-1]):
        return False
    return len(name) <= 253 and all(_LABEL.match(label) for label in labels)


def _usable_url(url: str) -> bool:
    """An http(s) address with a host that can be one (and a port, if any, that is one);
    nothing in it a client would have to guess at (whitespace, a NUL)."""
    if len(url) > URL_MAX or not url.isprintable() or any(ch.isspace() for ch in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for one that is no number or out of range
    except ValueError:  # a broken [IPv6] host too
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        return False
    return _usable_host(parts.hostname.rstrip("."))


def nowhere(host: str) -> bool:
    """An IP address no partner can be at: unspecified (0.0.0.0, ::), link-local (169.254.x,
    where clouds answer about the machine itself; fe80::), a cloud's metadata service
    elsewhere (Alibaba Cloud's 100.100.100.200), multicast or broadcast, written
    as IPv4 or as IPv6 mapping one (::ffff:169.254.169.254). This machine (127.x, ::1) and a
    private network may hold a partner's bridge: taken."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA:
        return True
    broadcast = isinstance(address, ipaddress.IPv4Address) and int(address) == 2**32 - 1
    return address.is_unspecified or address.is_link_local or address.is_multicast or broadcast


def address_key(url: str) -> str:
    """An address as a client reaches it, to tell two spellings of one apart from two
    addresses: what yarl makes of it (the host in lower case without a trailing dot, the
    port given or the scheme's, the path — "/" for none — with escapes of plain letters
    decoded, the query; an empty one is none)."""
    try:
        parsed = URL(url)
    except ValueError:
        return url
    host = (parsed.raw_host or "").rstrip(".")
    return (
        f"{parsed.scheme}://{host}:{parsed.port}{parsed.raw_path or '/'}?{parsed.raw_query_string}"
    )


class Webhooks:
    """Registering and revoking webhooks (heads and admins), and what became of them."""

    def __init__(self, store: Store, sealer: Sealer) -> None:
        self.store = store
        self.sealer = sealer

    async def seal_older(self) -> int:
        """Seal with the current key the secrets stored in clear before they were sealed,
        or sealed with a previous key (once, at start; two processes starting together seal
        each once). Returns how many."""
        count = 0
        for hook in await self.store.webhooks.all():
            try:
                resealed = self.sealer.resealed(hook.secret)
            except Unsealable:  # its delivery says so (UNSEALABLE); nothing to do here
                log.error("webhook %s: its signing secret was sealed with a key this process"
                          " does not have", hook.name)  # fmt: skip
                continue
            if resealed is not None:
                count += await self.store.webhooks.reseal(hook.id, hook.secret, resealed)
        if count:
            log.info("sealed %d webhook signing secret(s) with the current key", count)
        return count

    async def register(self, name: str, url: str, secret: str, actor: str, now: datetime) -> str:
        """Register a webhook; returns its secret (made here when none is given)."""
        name, url, secret = name.strip(), url.strip(), secret.strip()
        if not name or len(name) > NAME_MAX or not name.isprintable():
            raise BadWebhook("name", N_("1 to 64 characters"))
        if not _usable_url(url):
            raise BadWebhook("url", N_("an http:// or https:// address of at most 500 characters"))
        parts = urlsplit(url)
        if "@" in parts.netloc:  # user:password@host
            raise BadWebhook("url", N_("no user name or password in the address"))
        if "#" in url:  # never sent: the partner would not get what the address says
            raise BadWebhook("url", N_("no #fragment in the address"))
        if nowhere((parts.hostname or "").rstrip(".")):
            raise BadWebhook("url", N_("not an address a partner can be at"))
        if secret and not (16 <= len(secret) <= 200 and secret.isascii() and secret.isprintable()):
            raise BadWebhook("secret", N_("16 to 200 printable ASCII characters, or empty"))
        secret = secret or "whsec_" + secrets.token_urlsafe(32)
        kept = self.sealer.seal(secret)  # the partner is shown it once; we keep it sealed
        key = address_key(url)
        added = await self.store.webhooks.add(
            name, url, kept, actor, to_utc_text(now), same=lambda other: address_key(other) == key
        )
        if isinstance(added, Taken) and added.field == "name":
            raise BadWebhook("name", N_("an active webhook has this name"))
        if isinstance(added, Taken):  # the partner would get every event twice
            raise BadWebhook("url", N_("the webhook %(name)s has this address already"),
                             name=added.name)  # fmt: skip
        log.info("webhook %s registered by %s: %s", name, actor, url)
        return secret

    async def revoke(self, name: str, actor: str, now: datetime) -> bool:
        revoked = await self.store.webhooks.revoke(name, actor, to_utc_text(now))
        if revoked:
            log.info("webhook %s revoked by %s", name, actor)
        return revoked

    async def all(self) -> list[Webhook]:
        return await self.store.webhooks.all()

    async def recent(self, limit: int = 100) -> list[DeliveryRow]:
        return await self.store.webhooks.recent(limit)


class WebhookDelivery:
    """The sender's side: claim what is due, POST it, record what became of it."""

    def __init__(
        self,
        store: Store,
        poster: WebhookPoster,
        clock: Callable[[], datetime],
        config: Callable[[], PointConfig],
        links: Links,
        sealer: Sealer,
    ) -> None:
        self.store = store
        self.poster = poster
        self.clock = clock
        self.config = config
        self.links = links
        self.sealer = sealer

    async def run_due(self) -> int:
        """Send every delivery due now; returns how many were claimed. A partner takes at
        most PER_WEBHOOK of the AT_ONCE posts at a time, and once one of its deliveries
        fails (down, timed out, refused) the rest of its round wait for their retry
        untried, so a partner that is down costs one timeout a round, not one each."""
        claimed_all = 0
        limit = asyncio.Semaphore(AT_ONCE)
        while claimed := await self.store.webhooks.claim(self.clock(), CLAIM):
            outcomes = await self._round(claimed, limit)
            await self.store.webhooks.settle(outcomes, self.clock())
            claimed_all += len(claimed)
        return claimed_all

    async def _round(self, claimed: list[Due], limit: asyncio.Semaphore) -> list[Outcome]:
        mine = {due.webhook.id: asyncio.Semaphore(PER_WEBHOOK) for due in claimed}
        failing: set[int] = set()
        in_hand = {due.id for due in claimed}

        async def send(due: Due) -> Outcome:
            try:
                async with mine[due.webhook.id], limit:
                    if due.webhook.id in failing:
                        return self._later(due)
                    outcome = await self._send(due)
                    # Down, timed out or failing (5xx): its other deliveries wait. A 4xx
                    # is about that event alone.
                    server = outcome.http_status is None or outcome.http_status >= 500
                    if server and outcome.status != "delivered" and outcome.error != UNSEALABLE:
                        failing.add(due.webhook.id)
                    return outcome
            finally:
                in_hand.discard(due.id)

        async def stamp() -> None:
            while True:
                await asyncio.sleep(IN_HAND_EVERY)
                await self.store.webhooks.touch(sorted(in_hand), self.clock())

        stamping = asyncio.create_task(stamp())
        try:
            return list(await asyncio.gather(*(send(due) for due in claimed)))
        finally:
            stamping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stamping

    def _later(self, due: Due) -> Outcome:
        """Left untried this round (its partner just failed): back in the queue at the wait
        of the try it had before, the claim's attempt given back."""
        wait = BACKOFF[max(due.attempts - 2, 0)]
        return Outcome(due.id, "retrying", None, NOT_TRIED, self.clock() + wait, tried=False)

    async def unstick(self) -> None:
        """Deliveries a dead sender left mid-POST go back to the queue."""
        now = self.clock()
        await self.store.webhooks.unstick(now - STUCK_AFTER, now)

    async def sweep(self) -> int:
        """Deliveries a dead sender left mid-POST go back to the queue; then what is due."""
        await self.unstick()
        return await self.run_due()

    def event(self, due: Due) -> WebhookEvent:
        """What the partner is told: the case's code and status at the event, its channel
        and topic, and what the submitter was told (a reply, an outcome, a department, a
        department's public answer)."""
        config = self.config()
        data: dict[str, object] = {
            "code": due.code,
            "status": due.status,
            "channel": due.channel,
            "category": due.category,
            "status_url": self.links.track(due.code) if self.links.base else None,
        }
        if due.kind in ("reply", "resolve") and due.detail.get("text"):
            data["text"] = due.detail["text"]
        if due.kind == "answer" and due.detail.get("public") and due.detail.get("text"):
            data["text"] = due.detail["text"]  # an answer marked public, as /track shows it
        if due.kind in ("refer", "answer") and due.detail.get("department"):
            department = config.department(str(due.detail["department"]))
            data["department"] = department.name if department else due.detail["department"]
        if due.kind == "rated":
            data["rating"] = due.detail.get("rating")
        return WebhookEvent(id=due.event_id, type=f"case.{due.kind}", at=due.at, data=data)

    async def _send(self, due: Due) -> Outcome:
        now = self.clock()
        try:
            secret = self.sealer.unseal(due.webhook.secret)
        except Unsealable:  # this process has another key: one with the right one may send it
            log.error("webhook %s: its signing secret was sealed with a key this process"
                      " does not have", due.webhook.name)  # fmt: skip
            return self._retry(due, None, UNSEALABLE)
        try:
            status = await self.poster.post(due.webhook.url, secret, self.event(due), now)
        except WebhookUnreachable as exc:
            return self._retry(due, None, str(exc)[:500])
        if 200 <= status < 300:
            return Outcome(due.id, "delivered", status, None, now)
        return self._retry(due, status, f"HTTP {status}")

    def _retry(self, due: Due, status: int | None, error: str) -> Outcome:
        now = self.clock()
        if due.attempts > len(BACKOFF):
            log.warning("webhook %s: event %d given up after %d attempts (%s)",
                        due.webhook.name, due.event_id, due.attempts, error)  # fmt: skip
            return Outcome(due.id, "failed", status, error, now)
        wait = BACKOFF[due.attempts - 1]
        log.info("webhook %s: event %d not delivered (%s); again in %s",
                 due.webhook.name, due.event_id, error, wait)  # fmt: skip
        return Outcome(due.id, "retrying", status, error, now + wait)
