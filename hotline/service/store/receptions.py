"""Themed reception events, their sign-ups, and what became of the requests raised at one.
A sign-up takes a seat in the same write that stores it: the UPDATE of the event's
`signed_up` locks its row, so two sign-ups for the last seat cannot both get it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hotline.service.cases import from_utc_text, to_utc_text
from hotline.service.store.database import Conn, Database, Row
from hotline.service.store.outbox import add_texts_in, cancel_unsent_in


@dataclass(frozen=True)
class Reception:
    id: int
    topic: str
    details: str
    place: str
    starts_at: datetime
    ends_at: datetime
    deputies: tuple[str, ...]
    departments: tuple[str, ...]
    capacity: int
    signed_up: int
    created_by: str
    cancelled_at: datetime | None
    version: int = 1  # counts the changes of the plan
    updated_at: datetime | None = None

    @property
    def seats_left(self) -> int:
        return max(0, self.capacity - self.signed_up)


@dataclass(frozen=True)
class Signup:
    id: int
    reception_id: int
    company: str
    contact: str
    phone: str
    raise_text: str
    language: str
    created_at: datetime


@dataclass(frozen=True)
class Withdrawal:
    """A sign-up a head withdrew, as it was, and when and by whom (a member's id)."""

    company: str
    contact: str
    phone: str
    raise_text: str
    signed_up_at: datetime
    withdrawn_at: datetime
    withdrawn_by: str


class _NotWithdrawn(Exception):
    """The sign-up is gone, or its event started or is cancelled: nothing is written."""


class SignupRefused(Exception):
    """No seat was taken: `reason` is full, taken (this phone signed up already) or closed
    (the event is cancelled, started or unknown)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_SELECT = (
    "SELECT id, topic, details, place, starts_at, ends_at, deputies, departments, capacity,"
    " signed_up, created_by, cancelled_at, version, updated_at FROM receptions"
)
_SIGNUP = (
    "SELECT s.id, s.reception_id, s.company, s.contact, s.phone, s.raise_text, s.language,"
    " s.created_at FROM reception_signups s"
)


def _reception(row: Row) -> Reception:
    return Reception(
        id=row["id"],
        topic=row["topic"],
        details=row["details"],
        place=row["place"],
        starts_at=from_utc_text(row["starts_at"]),
        ends_at=from_utc_text(row["ends_at"]),
        deputies=tuple(json.loads(row["deputies"])),
        departments=tuple(json.loads(row["departments"])),
        capacity=row["capacity"],
        signed_up=row["signed_up"],
        created_by=row["created_by"],
        cancelled_at=from_utc_text(row["cancelled_at"]) if row["cancelled_at"] else None,
        version=row["version"],
        updated_at=from_utc_text(row["updated_at"]),
    )


def _signup(row: Row) -> Signup:
    return Signup(
        id=row["id"],
        reception_id=row["reception_id"],
        company=row["company"],
        contact=row["contact"],
        phone=row["phone"],
        raise_text=row["raise_text"],
        language=row["language"],
        created_at=from_utc_text(row["created_at"]),
    )


# What to text each business signed up about a change of an event (the event as it is now):
# (purpose key, body), or None for no text.
Compose = Callable[[Reception, Signup], tuple[str, str] | None]


async def _tell_in(db: Conn, reception_id: int, compose: Compose, now: datetime) -> list[int]:
    """Queue a text to each business signed up, as `compose` words it for the event now."""
    row = await db.row(f"{_SELECT} WHERE id = :id", {"id": reception_id})
    if row is None:
        return []
    reception = _reception(row)
    rows = await db.rows(
        f"{_SIGNUP} WHERE s.reception_id = :id ORDER BY s.id", {"id": reception_id}
    )
    texts = []
    for signup in map(_signup, rows):
        text = compose(reception, signup)
        if text is not None:
            texts.append((text[0], signup.phone, text[1]))
    return await add_texts_in(db, texts, now)


def _values(fields: dict[str, Any]) -> dict[str, Any]:
    """An event's fields as stored: times as UTC text, id lists as JSON."""
    return fields | {
        "starts_at": to_utc_text(fields["starts_at"]),
        "ends_at": to_utc_text(fields["ends_at"]),
        "deputies": json.dumps(list(fields["deputies"])),
        "departments": json.dumps(list(fields["departments"])),
    }


class ReceptionRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, fields: dict[str, Any], actor: str, now: datetime) -> int:
        """Store a new event (topic, details, place, starts_at, ends_at, deputies,
        departments, capacity); returns its id."""

        async def write(db: Conn) -> int:
            new_id = await db.scalar(
                "INSERT INTO receptions (topic, details, place, starts_at, ends_at, deputies,"
                " departments, capacity, created_by, created_at, updated_at) VALUES (:topic,"
                " :details, :place, :starts_at, :ends_at, :deputies, :departments, :capacity,"
                " :actor, :at, :at) RETURNING id",
                _values(fields) | {"actor": actor, "at": to_utc_text(now)},
            )
            return int(new_id)

        return await self.db.write(write)

    async def change(
        self,
        reception_id: int,
        fields: dict[str, Any],
        now: datetime,
        *,
        moved: bool,
        compose: Compose,
    ) -> list[int] | None:
        """Change an event that has not started and is not cancelled, with a new version,
        and queue `compose`'s texts in the same write; None when it cannot be changed (or
        has more sign-ups than the new capacity). `moved` (to another day or time): each
        sign-up is reminded again before the new time. Returns the outbox ids queued."""

        async def write(db: Conn) -> list[int] | None:
            changed = await db.execute(
                "UPDATE receptions SET topic = :topic, details = :details, place = :place,"
                " starts_at = :starts_at, ends_at = :ends_at, deputies = :deputies,"
                " departments = :departments, capacity = :capacity, version = version + 1,"
                " updated_at = :now WHERE id = :id AND cancelled_at IS NULL"
                " AND starts_at > :now AND signed_up <= :capacity",
                _values(fields) | {"id": reception_id, "now": to_utc_text(now)},
            )
            if changed != 1:
                return None
            if moved:
                await db.execute(
                    "UPDATE reception_signups SET reminded_at = NULL WHERE reception_id = :id",
                    {"id": reception_id},
                )
            return await _tell_in(db, reception_id, compose, now)

        return await self.db.write(write)

    async def cancel(
        self, reception_id: int, actor: str, now: datetime, compose: Compose
    ) -> list[int] | None:
        """Cancel an event that has not started, and queue `compose`'s texts in the same
        write; None when it cannot be (started, cancelled already, unknown)."""
        at = to_utc_text(now)

        async def write(db: Conn) -> list[int] | None:
            changed = await db.execute(
                "UPDATE receptions SET cancelled_by = :actor, cancelled_at = :at,"
                " version = version + 1, updated_at = :at"
                " WHERE id = :id AND cancelled_at IS NULL AND starts_at > :at",
                {"actor": actor, "at": at, "id": reception_id},
            )
            return await _tell_in(db, reception_id, compose, now) if changed == 1 else None

        return await self.db.write(write)

    async def withdraw(
        self,
        reception_id: int,
        signup_id: int,
        now: datetime,
        compose: Callable[[Reception, Signup], tuple[str, str]],
        unsent: str,
        actor: str,
    ) -> list[int] | None:
        """Take a sign-up back before the event starts (member `actor` does): its place is
        free again, it is kept among the event's withdrawals, texts to its contact whose
        purpose key begins `unsent` and not yet sent (its reminder) are cancelled, and the
        text `compose` words for it is queued, in one write (the outbox ids). None when it
        cannot be: the sign-up is gone already, or the event started or is cancelled."""
        at = to_utc_text(now)

        async def write(db: Conn) -> list[int]:
            # The event's row first: two withdrawals at once wait for each other here.
            freed = await db.execute(
                "UPDATE receptions SET signed_up = signed_up - 1 WHERE id = :id"
                " AND cancelled_at IS NULL AND starts_at > :at",
                {"id": reception_id, "at": at},
            )
            gone = await db.row(
                "DELETE FROM reception_signups WHERE id = :signup AND reception_id = :id"
                " RETURNING id, reception_id, company, contact, phone, raise_text, language,"
                " created_at",
                {"signup": signup_id, "id": reception_id},
            )
            if freed != 1 or gone is None:
                raise _NotWithdrawn  # and the place goes back: the write rolls back
            await db.execute(
                "INSERT INTO reception_withdrawals (reception_id, company, contact, phone,"
                " raise_text, signed_up_at, withdrawn_at, withdrawn_by) VALUES (:reception,"
                " :company, :contact, :phone, :raise_text, :signed_up_at, :at, :actor)",
                {"reception": reception_id, "company": gone["company"],
                 "contact": gone["contact"], "phone": gone["phone"],
                 "raise_text": gone["raise_text"], "signed_up_at": gone["created_at"],
                 "at": at, "actor": actor},
            )  # fmt: skip
            await cancel_unsent_in(db, gone["phone"], unsent, now)
            row = await db.row(f"{_SELECT} WHERE id = :id", {"id": reception_id})
            assert row is not None  # updated just above
            purpose, body = compose(_reception(row), _signup(gone))
            return await add_texts_in(db, [(purpose, gone["phone"], body)], now)

        try:
            return await self.db.write(write)
        except _NotWithdrawn:
            return None

    async def get(self, reception_id: int) -> Reception | None:
        row = await self.db.fetch_one(f"{_SELECT} WHERE id = :id", {"id": reception_id})
        return _reception(row) if row else None

    async def upcoming(self, now: datetime, limit: int = 100) -> list[Reception]:
        """Events not yet over, soonest first (cancelled ones too: their page says so)."""
        rows = await self.db.fetch(
            f"{_SELECT} WHERE ends_at >= :now ORDER BY starts_at, id LIMIT :limit",
            {"now": to_utc_text(now), "limit": limit},
        )
        return [_reception(r) for r in rows]

    async def past(
        self, now: datetime, limit: int = 50, before: int | None = None
    ) -> list[Reception]:
        """Events that are over, latest first; with `before`, those held before that event
        (the next page: none when it is unknown)."""
        after = ""
        if before is not None:
            after = (" AND (starts_at, id) < (SELECT starts_at, id FROM receptions"
                     " WHERE id = :before)")  # fmt: skip
        rows = await self.db.fetch(
            f"{_SELECT} WHERE ends_at < :now{after} ORDER BY starts_at DESC, id DESC LIMIT :limit",
            {"now": to_utc_text(now), "limit": limit, "before": before},
        )
        return [_reception(r) for r in rows]

    async def sign_up(
        self,
        reception_id: int,
        fields: dict[str, str],
        now: datetime,
        text: tuple[str, str] | None = None,
    ) -> tuple[int, list[int]]:
        """Take a seat and store the sign-up (company, contact, phone, raise_text, language)
        and its confirmation `text` (purpose key, body) in one write: (its id, the outbox
        ids queued). SignupRefused (and nothing stored) otherwise."""
        at = to_utc_text(now)

        async def write(db: Conn) -> tuple[int, list[int]]:
            seated = await db.execute(
                "UPDATE receptions SET signed_up = signed_up + 1 WHERE id = :id"
                " AND cancelled_at IS NULL AND starts_at > :at AND signed_up < capacity",
                {"id": reception_id, "at": at},
            )
            if seated != 1:
                row = await db.row(
                    "SELECT signed_up >= capacity AS is_full FROM receptions WHERE id = :id"
                    " AND cancelled_at IS NULL AND starts_at > :at",
                    {"id": reception_id, "at": at},
                )
                raise SignupRefused("full" if row and row["is_full"] else "closed")
            new_id = await db.scalar(
                "INSERT INTO reception_signups (reception_id, company, contact, phone,"
                " raise_text, language, created_at) VALUES (:id, :company, :contact, :phone,"
                " :raise_text, :language, :at) ON CONFLICT (reception_id, phone) DO NOTHING"
                " RETURNING id",
                fields | {"id": reception_id, "at": at},
            )
            if new_id is None:
                raise SignupRefused("taken")  # and the seat goes back: the write rolls back
            queued = []
            if text is not None:
                queued = await add_texts_in(db, [(text[0], fields["phone"], text[1])], now)
            return int(new_id), queued

        return await self.db.write(write)

    async def signups(self, reception_id: int) -> list[Signup]:
        rows = await self.db.fetch(
            f"{_SIGNUP} WHERE s.reception_id = :id ORDER BY s.id", {"id": reception_id}
        )
        return [_signup(r) for r in rows]

    async def withdrawals(self, reception_id: int) -> list[Withdrawal]:
        """The sign-ups withdrawn from an event, in the order they were withdrawn."""
        rows = await self.db.fetch(
            "SELECT company, contact, phone, raise_text, signed_up_at, withdrawn_at,"
            " withdrawn_by FROM reception_withdrawals WHERE reception_id = :id ORDER BY id",
            {"id": reception_id},
        )
        return [
            Withdrawal(
                company=r["company"],
                contact=r["contact"],
                phone=r["phone"],
                raise_text=r["raise_text"],
                signed_up_at=from_utc_text(r["signed_up_at"]),
                withdrawn_at=from_utc_text(r["withdrawn_at"]),
                withdrawn_by=r["withdrawn_by"],
            )
            for r in rows
        ]

    async def statuses(self, reception_id: int) -> dict[str, int]:
        """How many requests raised at the event are in each status."""
        rows = await self.db.fetch(
            "SELECT status, count(*) AS n FROM cases WHERE reception_id = :id GROUP BY status",
            {"id": reception_id},
        )
        return {r["status"]: int(r["n"]) for r in rows}

    async def to_remind(self, since: datetime, until: datetime) -> list[tuple[Reception, Signup]]:
        """Sign-ups not yet reminded for events (not cancelled) starting in [since, until)."""
        rows = await self.db.fetch(
            f"{_SIGNUP} JOIN receptions r ON r.id = s.reception_id WHERE s.reminded_at IS NULL"
            " AND r.cancelled_at IS NULL AND r.starts_at >= :since AND r.starts_at < :until"
            " ORDER BY s.id LIMIT 500",
            {"since": to_utc_text(since), "until": to_utc_text(until)},
        )
        found: dict[int, Reception] = {}
        pairs = []
        for row in rows:
            signup = _signup(row)
            if signup.reception_id not in found:
                reception = await self.get(signup.reception_id)
                if reception is None:
                    continue
                found[signup.reception_id] = reception
            pairs.append((found[signup.reception_id], signup))
        return pairs

    async def remind(
        self, reception: Reception, signup: Signup, text: tuple[str, str], now: datetime
    ) -> list[int]:
        """Queue a sign-up's reminder `text` (purpose key, body) and mark it reminded, in one
        write, if it is still there, not reminded, and its event still as `reception` was
        (not moved, not cancelled): the outbox ids queued, else none. A withdrawal or a move
        landing since `to_remind` read it is never overtaken."""
        at = to_utc_text(now)

        async def write(db: Conn) -> list[int]:
            claimed = await db.execute(
                "UPDATE reception_signups SET reminded_at = :at WHERE id = :id"
                " AND phone = :phone AND created_at = :created AND reminded_at IS NULL"
                " AND EXISTS (SELECT 1 FROM receptions r WHERE r.id = :reception"
                " AND r.version = :version AND r.cancelled_at IS NULL)",
                {"at": at, "id": signup.id, "phone": signup.phone,
                 "created": to_utc_text(signup.created_at), "reception": reception.id,
                 "version": reception.version},
            )  # fmt: skip
            if claimed != 1:
                return []
            return await add_texts_in(db, [(text[0], signup.phone, text[1])], now)

        return await self.db.write(write)
