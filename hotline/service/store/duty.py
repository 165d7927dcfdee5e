"""The duty book's rows: overrides ("cover"), absences ("away") and swaps (two covers sharing a
swap id). Rows are never deleted: a removed or edited change is marked removed, by whom."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hotline.service.cases import from_utc_text, to_utc_text
from hotline.service.store.database import Conn, Database, Row


@dataclass(frozen=True)
class Change:
    id: int
    kind: str  # "cover" or "away"
    member_id: str
    start: datetime
    end: datetime
    swap_id: int | None
    note: str
    created_by: str
    created_at: datetime


def _change(r: Row) -> Change:
    return Change(
        id=r["id"],
        kind=r["kind"],
        member_id=r["member_id"],
        start=from_utc_text(r["starts_at"]),
        end=from_utc_text(r["ends_at"]),
        swap_id=r["swap_id"],
        note=r["note"],
        created_by=r["created_by"],
        created_at=from_utc_text(r["created_at"]),
    )


_ACTIVE = (
    "SELECT * FROM duty_changes WHERE removed_at IS NULL AND ends_at > :start"
    " AND starts_at < :end ORDER BY starts_at"
)


class DutyRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def active(self, start: datetime, end: datetime) -> list[Change]:
        """Changes in force that overlap [start, end)."""
        rows = await self.db.fetch(_ACTIVE, {"start": to_utc_text(start), "end": to_utc_text(end)})
        return [_change(r) for r in rows]

    async def get_active(self, change_id: int) -> Change | None:
        row = await self.db.fetch_one(
            "SELECT * FROM duty_changes WHERE id = :id AND removed_at IS NULL", {"id": change_id}
        )
        return _change(row) if row else None


async def active_in(db: Conn, start: datetime, end: datetime) -> list[Change]:
    """Changes in force that overlap [start, end), read inside the caller's write (so a check
    against them holds when the write commits)."""
    rows = await db.rows(_ACTIVE, {"start": to_utc_text(start), "end": to_utc_text(end)})
    return [_change(r) for r in rows]


async def insert_change(
    db: Conn,
    kind: str,
    member: str,
    start: datetime,
    end: datetime,
    actor: str,
    now: datetime,
    note: str = "",
    swap_id: int | None = None,
) -> int:
    change_id = await db.scalar(
        "INSERT INTO duty_changes (kind, member_id, starts_at, ends_at, swap_id, note,"
        " created_by, created_at) VALUES (:kind, :member, :start, :end, :swap_id, :note,"
        " :actor, :now) RETURNING id",
        {
            "kind": kind,
            "member": member,
            "start": to_utc_text(start),
            "end": to_utc_text(end),
            "swap_id": swap_id,
            "note": note,
            "actor": actor,
            "now": to_utc_text(now),
        },
    )
    return int(change_id)


async def start_swap(db: Conn, change_id: int) -> None:
    """The first half of a swap names itself as the swap."""
    await db.execute("UPDATE duty_changes SET swap_id = :id WHERE id = :id", {"id": change_id})


async def mark_removed(db: Conn, change_id: int, actor: str, now: datetime) -> bool:
    """Mark one change removed; False when it was not active any more."""
    changed = await db.execute(
        "UPDATE duty_changes SET removed_by = :actor, removed_at = :now"
        " WHERE id = :id AND removed_at IS NULL",
        {"actor": actor, "now": to_utc_text(now), "id": change_id},
    )
    return changed == 1


async def mark_removed_with_swap(db: Conn, change_id: int, actor: str, now: datetime) -> int:
    """Mark a change removed, and the other half of its swap; returns how many rows."""
    changed = await db.execute(
        "UPDATE duty_changes SET removed_by = :actor, removed_at = :now WHERE removed_at IS NULL"
        " AND (id = :id OR (swap_id IS NOT NULL AND swap_id ="
        " (SELECT swap_id FROM duty_changes WHERE id = :id)))",
        {"actor": actor, "now": to_utc_text(now), "id": change_id},
    )
    return changed


async def future_covers_in(db: Conn, member_id: str, now: datetime) -> int:
    """How many overrides a member still has to come."""
    return int(
        await db.scalar(
            "SELECT count(*) FROM duty_changes WHERE member_id = :member AND kind = 'cover'"
            " AND removed_at IS NULL AND ends_at > :now",
            {"member": member_id, "now": to_utc_text(now)},
        )
    )
