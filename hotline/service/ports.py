"""What the domain needs from the world outside it, as protocols: the intake queue, the
signals other processes listen for, and an SMS provider. `queue` implements the first two on
Redis and `channels` the last on Twilio; the assembly wires them in. So `service` holds every
rule and imports no transport."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from hotline.service.cases import Intake

# Shared state every process caches and reloads when its version moves on.
Versioned = Literal["duty", "directory"]

OPTED_OUT_CODE = 21610  # Twilio: the recipient replied STOP


@dataclass(frozen=True)
class Submitted:
    """What intake answers at once: the case code the submitter is given."""

    code: str
    new: bool  # False when the intake key was seen before
    spooled: bool = False  # Redis was unreachable: held in the data dir's spool for now
    follow_up: bool = False  # added to the sender's open case, not a new case


class IntakeSink(Protocol):
    """Where channels hand requests: a code at once, routing later."""

    async def submit(
        self, intake: Intake, *, thread_within: timedelta | None = None
    ) -> Submitted: ...

    async def end_thread(self, phone: str, code: str) -> None:
        """The number's texts stop joining case `code` (it is finished); a thread that has
        moved on to another case is left as it is."""
        ...

    async def answered(self, message_id: str) -> str | None:
        """What a text that changed something (a rating) was answered, if it was."""
        ...

    async def remember_answer(self, message_id: str, text: str) -> None:
        """Keep a text's answer for a day: a retry of it gets the same."""
        ...

    async def open_thread(self, phone: str, code: str, within: timedelta) -> None:
        """The number's texts join case `code` for `within` from now (a member wrote to
        them on it, or it is being looked at again)."""
        ...

    async def received_at(self, code: str) -> str | None:
        """When a code was issued (UTC text), for codes not stored yet."""
        ...

    async def thread_of(self, phone: str) -> str | None:
        """The case code the number's next text joins (see `submit`'s thread), if any."""
        ...

    async def alias_of(self, code: str) -> str | None:
        """The case code a spooled code turned out to be, if it did."""
        ...


@dataclass(frozen=True)
class WebhookEvent:
    """One case event as a partner receives it (channels/webhooks.py writes it as JSON)."""

    id: int  # the event's id: a partner drops a repeat by it
    type: str  # "case.<event kind>"
    at: datetime
    data: dict[str, Any]


class WebhookUnreachable(Exception):
    """The partner could not be reached or did not answer in time."""


class WebhookPoster(Protocol):
    async def post(self, url: str, secret: str, event: WebhookEvent, now: datetime) -> int:
        """POST the signed event; the partner's HTTP status, or WebhookUnreachable."""
        ...


class Signals(Protocol):
    """Best-effort signals between processes. Each may be lost (Redis unreachable) without
    harm: live views reload, the sender sweeps its outbox, versions are read again."""

    async def case_changed(self, code: str, kind: str) -> None:
        """A case changed: live consoles show it."""
        ...

    async def outbound_queued(self, item_id: int) -> None:
        """An outbox row waits to be sent."""
        ...

    async def webhooks_due(self) -> None:
        """Webhook deliveries wait to be sent (the sender also looks now and then)."""
        ...

    async def version(self, name: Versioned) -> int | None:
        """The version of a piece of shared state; None when it cannot be read now."""
        ...

    async def bump(self, name: Versioned) -> None:
        """Every process reloads that state."""
        ...


@dataclass(frozen=True)
class Sent:
    sid: str
    status: str


@dataclass(frozen=True)
class Listed:
    """A message in the provider's list of those sent to a number."""

    sid: str
    status: str
    body: str
    created: datetime | None


@dataclass(frozen=True)
class Listing:
    """The messages sent to a number, newest first, as far back as they were read: every
    message created since `complete_since` is among them."""

    messages: list[Listed]
    complete_since: datetime


class ProviderError(Exception):
    """The provider refused the message for good (bad number, opted out...)."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ProviderUncertain(Exception):
    """No clear answer (timeout, 5xx, connection lost): the message may have gone out."""


class SmsProvider(Protocol):
    async def send(self, to: str, body: str, *, ref: int) -> Sent:
        """Send `body` to `to`; `ref` (our outbox row) comes back with its status reports,
        so a report that arrives before this call returns still finds its row."""
        ...

    async def sent_to(self, to: str, since: datetime) -> Listing:
        """The messages sent to `to` since `since`, newest first; when there are more than
        can be read back, the newest of them (`Listing.complete_since` says how far)."""
        ...
