"""The plain rotation: exact handoffs, order, and shifts that follow the local clock."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.service.config import DayNote, Duty, DutyHours
from hotline.service.duty import (
    PACKAGE_KNOWS_UNTIL,
    Rotation,
    Schedule,
    calendar_ends,
    calendar_warning,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def rotation(period: timedelta = timedelta(days=1), tz: ZoneInfo = SHANGHAI) -> Rotation:
    duty = Duty(
        rotation=("chen", "zhu", "wang"),
        start=date(2026, 11, 23),
        handoff=time(8, 30),
        period=period,
        standing_head="shen",
        ack_within=timedelta(minutes=30),
        holidays=None,
    )
    return Rotation(duty, tz)


def local(*parts: int, tz: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(*parts).replace(tzinfo=tz)  # type: ignore[arg-type]


def test_handoff_happens_at_the_exact_second() -> None:
    r = rotation()
    assert r.on_duty(local(2026, 11, 23, 8, 29, 59)) == "wang"  # the shift before start
    assert r.on_duty(local(2026, 11, 23, 8, 30, 0)) == "chen"
    assert r.on_duty(local(2026, 11, 24, 8, 29, 59, 999999)) == "chen"
    assert r.on_duty(local(2026, 11, 24, 8, 30)) == "zhu"
    assert r.on_duty(local(2026, 11, 25, 8, 30)) == "wang"
    assert r.on_duty(local(2026, 11, 26, 8, 30)) == "chen"


def test_shift_bounds() -> None:
    shift = rotation().shift_at(local(2026, 11, 24, 23, 0))
    assert shift.member_id == "zhu"
    assert shift.start == datetime(2026, 11, 24, 0, 30, tzinfo=UTC)
    assert shift.end == datetime(2026, 11, 25, 0, 30, tzinfo=UTC)


def test_twelve_hour_shifts() -> None:
    r = rotation(timedelta(hours=12))
    assert r.on_duty(local(2026, 11, 23, 8, 30)) == "chen"
    assert r.on_duty(local(2026, 11, 23, 20, 29)) == "chen"
    assert r.on_duty(local(2026, 11, 23, 20, 30)) == "zhu"
    assert r.on_duty(local(2026, 11, 24, 8, 30)) == "wang"


def test_weekly_shifts() -> None:
    r = rotation(timedelta(days=7))
    assert r.on_duty(local(2026, 11, 29, 23, 0)) == "chen"
    assert r.on_duty(local(2026, 11, 30, 8, 30)) == "zhu"


def test_day_shifts_keep_local_handoff_across_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    duty = Duty(
        ("a", "b"),
        date(2026, 3, 27),
        time(8, 30),
        timedelta(days=1),
        "h",
        timedelta(minutes=30),
        None,
    )
    r = Rotation(duty, berlin)
    # Clocks go forward on 2026-03-29; the handoff is still 08:30 local.
    assert r.on_duty(local(2026, 3, 29, 8, 29, tz=berlin)) == "b"
    assert r.on_duty(local(2026, 3, 29, 8, 30, tz=berlin)) == "a"
    assert r.shift_at(local(2026, 3, 29, 12, 0, tz=berlin)).start == local(
        2026, 3, 29, 8, 30, tz=berlin
    )


BERLIN = ZoneInfo("Europe/Berlin")


def berlin_duty(period: timedelta, handoff: time = time(8, 30)) -> Duty:
    return Duty(("chen", "zhu", "wang"), date(2026, 1, 5), handoff, period, "shen",
                timedelta(minutes=30), None)  # fmt: skip


def berlin_rotation(period: timedelta, handoff: time = time(8, 30)) -> Rotation:
    return Rotation(berlin_duty(period, handoff), BERLIN)


@pytest.mark.timeout(10)
def test_shifts_shorter_than_a_day_count_real_hours_in_summer_time() -> None:
    """12-hour shifts in a zone with summer time: each instant lies in the shift given for
    it, and the roster of the last days is read (it looped for ever, freezing the handoff,
    the roster page and the calendar feed, and the service with them)."""
    r = berlin_rotation(timedelta(hours=12))
    for at in (datetime(2026, 7, 1, 7, tzinfo=UTC), datetime(2027, 4, 15, 12, tzinfo=UTC)):
        shift = r.shift_at(at)
        assert shift.start <= at < shift.end
        assert shift.end - shift.start == timedelta(hours=12)
    segments = Schedule(berlin_duty(timedelta(hours=12)), BERLIN).shifts(
        datetime(2026, 6, 28, tzinfo=UTC), datetime(2026, 7, 1, 7, tzinfo=UTC)
    )
    assert len(segments) == 7
    assert all(a.end == b.start for a, b in itertools.pairwise(segments))


def test_a_handoff_in_the_hour_the_clocks_repeat_happens_once() -> None:
    """Handoff at 02:30 on the night summer time ends (02:00-03:00 comes twice): the new
    shift begins at the first 02:30 and a request of the second pass through 02:10 is the
    new member's too (it went back to the one whose shift had ended), as the roster says."""
    r = berlin_rotation(timedelta(days=1), time(2, 30))
    first_pass = datetime(2026, 10, 25, 0, 40, tzinfo=UTC)  # 02:40 CEST
    second_pass = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET
    before = datetime(2026, 10, 25, 0, 20, tzinfo=UTC)  # 02:20 CEST
    assert r.on_duty(first_pass) == r.on_duty(second_pass) != r.on_duty(before)
    shift = r.shift_at(second_pass)
    assert shift.start == datetime(2026, 10, 25, 0, 30, tzinfo=UTC) <= second_pass < shift.end
    # The night the clocks skip 02:00-03:00: the handoff is at 03:30 summer time, for the
    # router and the roster alike.
    assert r.shift_at(datetime(2026, 3, 29, 1, 15, tzinfo=UTC)).start == datetime(
        2026, 3, 28, 1, 30, tzinfo=UTC
    )
    assert r.shift_at(datetime(2026, 3, 29, 1, 30, tzinfo=UTC)).start == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )


def test_duty_hours_the_clocks_skip_resume_the_next_day() -> None:
    """Duty hours 02:15-02:45 in Berlin do not exist on the night summer time begins:
    handling resumes the day after (it asked the router to assign to nobody and crashed)."""
    duty = dataclasses.replace(
        berlin_duty(timedelta(days=1)), hours=DutyHours("daily", time(2, 15), time(2, 45))
    )
    schedule = Schedule(duty, BERLIN)
    at = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 CET, 29 March
    resume, member = schedule.next_on_duty(at)
    assert resume == datetime(2026, 3, 30, 0, 15, tzinfo=UTC)  # 02:15 CEST on the 30th
    assert member in ("chen", "zhu", "wang")


zones = st.sampled_from([SHANGHAI, BERLIN, ZoneInfo("America/New_York")])
handoffs = st.sampled_from([time(8, 30), time(2, 30), time(1, 30), time(0, 0)])
near_changes = st.sampled_from([datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 3, 29, 1,
                                tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC),
                                datetime(2026, 11, 1, 6, tzinfo=UTC)])  # fmt: skip


@given(
    near=near_changes,
    offset=st.integers(min_value=-3 * 3600, max_value=3 * 3600),
    period=st.sampled_from([timedelta(hours=h) for h in (1, 6, 8, 12, 24, 48, 168)]),
    tz=zones,
    handoff=handoffs,
)
def test_near_a_clock_change_each_instant_is_in_the_shift_given_for_it(
    near: datetime, offset: int, period: timedelta, tz: ZoneInfo, handoff: time
) -> None:
    r = Rotation(berlin_duty(period, handoff), tz)
    at = near + timedelta(seconds=offset)
    shift = r.shift_at(at)
    assert shift.start <= at < shift.end
    assert r.shift_at(shift.end).start == shift.end


instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
periods = st.sampled_from([timedelta(hours=h) for h in (1, 6, 8, 12, 24, 48, 168)])


@given(at=instants, period=periods)
def test_every_instant_has_one_shift_that_contains_it(at: datetime, period: timedelta) -> None:
    r = rotation(period)
    shift = r.shift_at(at)
    assert shift.start <= at < shift.end
    assert shift.member_id in ("chen", "zhu", "wang")


@given(at=instants, period=periods)
def test_next_shift_is_the_next_member_in_order(at: datetime, period: timedelta) -> None:
    r = rotation(period)
    shift = r.shift_at(at)
    following = r.shift_at(shift.end)
    order = ("chen", "zhu", "wang")
    assert following.start == shift.end
    assert order.index(following.member_id) == (order.index(shift.member_id) + 1) % 3


def schedule(
    hours: DutyHours | None, holidays: str | None = None, days: tuple[DayNote, ...] = ()
) -> Schedule:
    duty = Duty(
        rotation=("chen", "zhu", "wang"),
        start=date(2026, 11, 23),
        handoff=time(8, 30),
        period=timedelta(days=1),
        standing_head="shen",
        ack_within=timedelta(minutes=30),
        holidays=holidays,
        hours=hours,
        days=days,
    )
    return Schedule(duty, SHANGHAI)


WORKDAYS = DutyHours("workdays", time(8, 30), time(17, 30))


def test_around_the_clock_by_default() -> None:
    s = schedule(None)
    at = local(2026, 11, 28, 3, 0)  # a Saturday night
    assert s.on_duty(at) == s.rotation.on_duty(at)
    assert s.resumes_at(at) == at


def test_office_hours_on_workdays() -> None:
    s = schedule(WORKDAYS)
    assert s.on_duty(local(2026, 11, 24, 8, 29, 59)) is None
    assert s.on_duty(local(2026, 11, 24, 8, 30)) == "zhu"
    assert s.on_duty(local(2026, 11, 24, 17, 29, 59)) == "zhu"
    assert s.on_duty(local(2026, 11, 24, 17, 30)) is None
    # Friday evening -> Monday 08:30, and Monday's shift member.
    resume, member = s.next_on_duty(local(2026, 11, 27, 18, 0))
    assert resume == local(2026, 11, 30, 8, 30)
    assert member == s.rotation.on_duty(local(2026, 11, 30, 8, 30))


def test_china_holidays_and_make_up_workdays() -> None:
    s = schedule(WORKDAYS, holidays="cn")
    # 2026-10-01 is National Day (a Thursday): no duty.
    assert s.on_duty(local(2026, 10, 1, 10, 0)) is None
    assert schedule(WORKDAYS).on_duty(local(2026, 10, 1, 10, 0)) is not None
    # After the Golden Week, handling resumes on the first workday.
    resume = s.resumes_at(local(2026, 10, 1, 10, 0))
    assert resume.astimezone(SHANGHAI).date() > date(2026, 10, 1)
    assert s.is_workday(resume.astimezone(SHANGHAI).date())


# Made up for the test: the 2027 holidays are announced by the State Council each year.
SPRING_2027 = (
    *(DayNote(date(2027, 2, d), True, "春节") for d in range(6, 13)),
    DayNote(date(2027, 2, 14), False, "春节调休"),  # a Sunday worked
)


def test_the_points_own_days_win_over_the_package_and_reach_beyond_it() -> None:
    moved = (
        DayNote(date(2026, 11, 26), True, "园区停电"),
        DayNote(date(2026, 11, 28), False, "补班"),
    )
    s = schedule(WORKDAYS, holidays="cn", days=moved + SPRING_2027)
    assert not s.is_workday(date(2026, 11, 26))  # a Thursday the point closes
    assert s.is_workday(date(2026, 11, 28))  # a Saturday it works
    assert s.on_duty(local(2026, 11, 26, 10, 0)) is None
    assert s.on_duty(local(2026, 11, 28, 10, 0)) is not None
    # 2027 is past the package's data: the point's days count, the rest are Monday-Friday.
    assert not s.is_workday(date(2027, 2, 8))  # a Monday of the Spring Festival
    assert s.is_workday(date(2027, 2, 14))  # the Sunday worked
    assert s.is_workday(date(2027, 3, 1)) and not s.is_workday(date(2027, 3, 6))
    # Each day off says why, and who says so.
    assert s.day_note(date(2026, 11, 26)) == ("off", "园区停电", "point")
    assert s.day_note(date(2026, 11, 28)) == ("workday", "补班", "point")
    assert s.day_note(date(2026, 10, 1)) == ("off", "国庆节", "package")
    assert s.day_note(date(2026, 11, 29)) == ("off", "", "weekend")
    assert s.day_note(date(2026, 11, 27)) is None
    assert s.day_note(date(2027, 2, 8)) == ("off", "春节", "point")


def test_the_calendar_warns_sixty_days_before_it_runs_out() -> None:
    cn = schedule(WORKDAYS, holidays="cn")
    assert PACKAGE_KNOWS_UNTIL.year >= 2026
    cn_duty = _duty("cn")
    assert calendar_ends(cn_duty) == PACKAGE_KNOWS_UNTIL
    before = PACKAGE_KNOWS_UNTIL - timedelta(days=61)
    assert calendar_warning(cn_duty, before) is None
    assert calendar_warning(cn_duty, before + timedelta(days=1)) == PACKAGE_KNOWS_UNTIL
    # The point's own days for the next year, its New Year's Day among them, push the end to
    # that year's last day; a day or a festival of its own alone does not.
    assert calendar_ends(_duty("cn", SPRING_2027)) == PACKAGE_KNOWS_UNTIL
    extended = _duty("cn", (DayNote(date(2027, 1, 1), True, "元旦"), *SPRING_2027))
    assert calendar_ends(extended) == date(2027, 12, 31)
    assert calendar_warning(extended, date(2026, 12, 1)) is None
    assert calendar_ends(_duty(None)) is None  # no holiday calendar: nothing runs out
    assert cn.is_workday(date(2026, 12, 31))


def _duty(holidays: str | None, days: tuple[DayNote, ...] = ()) -> Duty:
    return Duty(
        rotation=("chen",), start=date(2026, 11, 23), handoff=time(8, 30),
        period=timedelta(days=1), standing_head="shen", ack_within=timedelta(minutes=30),
        holidays=holidays, days=days,
    )  # fmt: skip


def test_daily_hours() -> None:
    s = schedule(DutyHours("daily", time(8, 0), time(20, 0)))
    assert s.on_duty(local(2026, 11, 28, 19, 59)) is not None  # Saturday counts
    assert s.resumes_at(local(2026, 11, 28, 21, 0)) == local(2026, 11, 29, 8, 0)


def test_no_duty_hours_for_over_a_year_is_handled_now_not_a_crash() -> None:
    """The config refuses a run of over 45 days without duty hours; were one to slip
    through, every text would still be taken (handled as within hours), not refused."""
    start = date(2027, 1, 1)
    off = tuple(DayNote(start + timedelta(days=i), True, "x") for i in range(400))
    at = local(2027, 1, 4, 10, 0)
    assert schedule(WORKDAYS, days=off).resumes_at(at) == at


@given(at=instants)
def test_resumes_at_is_always_within_hours(at: datetime) -> None:
    s = schedule(WORKDAYS, holidays="cn")
    resume = s.resumes_at(at)
    assert resume >= at
    assert s.in_hours(resume)
