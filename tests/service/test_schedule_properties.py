"""Properties of the duty schedule with overrides and unavailability (hypothesis)."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from hotline.service.config import Duty, DutyHours
from hotline.service.duty import Away, Cover, Schedule

TZ = ZoneInfo("Asia/Shanghai")
MEMBERS = ("chen", "zhu", "wang")
DUTY = Duty(MEMBERS, date(2026, 11, 23), time(8, 30), timedelta(days=1), "shen",
            timedelta(minutes=30), None)  # fmt: skip
US = timedelta(microseconds=1)

instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
lengths = st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=10))


@st.composite
def covers(draw: st.DrawFn) -> Cover:
    start = draw(instants)
    return Cover(draw(st.sampled_from((*MEMBERS, "shen"))), start, start + draw(lengths))


@st.composite
def aways(draw: st.DrawFn) -> Away:
    start = draw(instants)
    return Away(draw(st.sampled_from(MEMBERS)), start, start + draw(lengths))


@given(
    at=instants, cover_list=st.lists(covers(), max_size=3), away_list=st.lists(aways(), max_size=3)
)
def test_around_the_clock_exactly_one_member_is_on_duty(
    at: datetime, cover_list: list[Cover], away_list: list[Away]
) -> None:
    schedule = Schedule(DUTY, TZ, tuple(cover_list), tuple(away_list))
    member = schedule.on_duty(at)
    assert member in (*MEMBERS, "shen")
    # ...and whoever it is, they are not away (unless every rotation member is).
    if not all(schedule.away(m, at) for m in MEMBERS):
        assert not schedule.away(member, at)


@given(start=instants, span=lengths, cover_list=st.lists(covers(), max_size=3))
def test_shifts_tile_the_interval_without_gaps_or_overlaps(
    start: datetime, span: timedelta, cover_list: list[Cover]
) -> None:
    schedule = Schedule(DUTY, TZ, tuple(cover_list))
    segments = schedule.shifts(start, start + span)
    assert segments[0].start == start and segments[-1].end == start + span
    for a, b in itertools.pairwise(segments):
        assert a.end == b.start
    for s in segments:
        assert schedule.on_duty(s.start) == s.member_id
        assert schedule.on_duty(s.end - US) == s.member_id


@given(cover=covers())
def test_an_override_wins_for_exactly_its_interval(cover: Cover) -> None:
    plain = Schedule(DUTY, TZ)
    schedule = Schedule(DUTY, TZ, (cover,))
    assert schedule.on_duty(cover.start) == cover.member
    assert schedule.on_duty(cover.end - US) == cover.member
    assert schedule.on_duty(cover.start - US) == plain.on_duty(cover.start - US)
    assert schedule.on_duty(cover.end) == plain.on_duty(cover.end)


@given(away=aways())
def test_someone_away_is_skipped_for_the_next_in_rotation(away: Away) -> None:
    schedule = Schedule(DUTY, TZ, aways=(away,))
    plain = Schedule(DUTY, TZ)
    at = away.start
    if plain.on_duty(at) == away.member:
        following = MEMBERS[(MEMBERS.index(away.member) + 1) % 3]
        assert schedule.on_duty(at) == following
    else:
        assert schedule.on_duty(at) == plain.on_duty(at)


def test_everyone_away_falls_to_the_standing_head() -> None:
    at = datetime(2026, 12, 1, 5, tzinfo=UTC)
    everyone = tuple(Away(m, at - timedelta(hours=1), at + timedelta(hours=1)) for m in MEMBERS)
    assert Schedule(DUTY, TZ, aways=everyone).on_duty(at) == "shen"


@given(at=instants)
def test_rotation_order_is_kept_across_holidays_and_reloads(at: datetime) -> None:
    office = dataclasses.replace(DUTY, hours=DutyHours("workdays", time(8, 30), time(17, 30)))
    with_holidays = Schedule(dataclasses.replace(office, holidays="cn"), TZ)
    reloaded = Schedule(dataclasses.replace(office, holidays="cn"), TZ)
    rotation_only = Schedule(DUTY, TZ)
    member = with_holidays.on_duty(at)
    assert member == reloaded.on_duty(at)  # the same config gives the same answer
    if member is not None:
        # Holidays take days out of duty; they never shift whose turn a day is.
        assert member == rotation_only.on_duty(at)
