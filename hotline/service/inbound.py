"""A text to the hotline, answered: opt-out and opt-in, HELP, status queries (only from the
number that made the request), a bare rating when one is pending (else a bare digit only
joins the number's open case, never opens one), and otherwise intake —
joining the sender's open case when it is recent, else a new case. Every channel that
carries texts calls `TextDesk.answer`; it decides, the channel only parses and replies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hotline.service.cases import FINISHED, Case, Intake, normalize_code
from hotline.service.casework import Casework, Conflict
from hotline.service.config import PointConfig
from hotline.service.dutybook import DutyBook
from hotline.service.i18n import N_, translate
from hotline.service.keywords import (
    CJK,
    Keyword,
    addressed_to,
    classify,
    detect_language,
    is_urgent,
    only_code,
    plainly_in,
)
from hotline.service.labels import STATUS_LABELS
from hotline.service.links import Links
from hotline.service.outbox import Outbox
from hotline.service.ports import IntakeSink
from hotline.service.store import Store
from hotline.service.store.database import STORE_FAULTS
from hotline.service.workflow import InvalidTransition

CODE_ECHO = 20  # at most this much of a code typed in a STATUS is said back
# What an urgent text is told: the standing head hears of it now, and where to call first.
URGENT_REPLY = N_(
    "Marked urgent: the standing head has been told at once. In danger now? Call 110"
    " (police), 119 (fire) or 120 (ambulance)."
)
NOT_A_REQUEST = N_("You are welcome. To make a request, text it in words.")
NOT_WAITING = N_(
    "No request from this number is waiting for a rating. To make a request, text it in words."
)

log = logging.getLogger(__name__)
LOOKUP_WAIT = 2.0  # seconds a text's code is looked up for before it is taken as any text


@dataclass(frozen=True)
class InboundText:
    """One inbound text as the carrier delivered it, already checked."""

    sid: str  # the carrier's message id: the intake key
    from_number: str  # E.164
    to_number: str | None
    body: str
    media: tuple[tuple[str, str], ...]  # (url, content type)
    opt_out_type: str | None  # the carrier's own opt-out verdict, if it gives one


class TextDesk:
    def __init__(
        self,
        intake: IntakeSink,
        store: Store,
        outbox: Outbox,
        casework: Casework,
        duty: DutyBook,
        config: Callable[[], PointConfig],
    ) -> None:
        self.intake = intake
        self.store = store
        self.outbox = outbox
        self.casework = casework
        self.duty = duty
        self.config = config

    async def answer(self, sms: InboundText, now: datetime, links: Links) -> str | None:
        """What to text back (None: nothing at all); `links` point at the public site."""
        lang = detect_language(sms.body, self.config().point.language)
        keyword = classify(sms.body, sms.opt_out_type)
        if sms.media and keyword.kind not in ("stop", "start"):
            keyword = Keyword("text")  # a picture with "?", "👍" or "5" is no keyword: kept
        if keyword.kind == "stop":
            await self.outbox.set_opt_out(sms.from_number, True, "keyword", now)
            return None  # nothing more is ever sent to this number, this reply included
        if keyword.kind == "start":
            await self.outbox.set_opt_out(sms.from_number, False, "keyword", now)
            return translate(lang, N_("You will get texts from the hotline again."))
        silent = await self.outbox.is_opted_out(sms.from_number)
        member = self.config().member_with_phone(sms.from_number)
        if member is not None and keyword.kind not in ("help", "status", "rating"):
            text = self._from_member(lang, links)  # a deputy answering a duty text
        else:
            text = await self._answer(sms, keyword, lang, now, links)
        return None if silent else text

    @staticmethod
    def _from_member(lang: str, links: Links) -> str:
        """A member's number makes no request (members are texted from the hotline's number,
        and answer it): their work is done in the console."""
        if links.base:
            said = N_("This is a member's number: texts from it make no request. Work on"
                      " requests in the console: %(url)s")  # fmt: skip
            return translate(lang, said) % {"url": links.base + "/console"}
        said = N_("This is a member's number: texts from it make no request. Work on requests"
                  " in the console.")  # fmt: skip
        return translate(lang, said)

    async def _answer(
        self, sms: InboundText, keyword: Keyword, lang: str, now: datetime, links: Links
    ) -> str:
        if keyword.kind == "help":
            return self._help(lang)
        if keyword.kind == "status":
            # "STATUS" is one word of any language: answer in the request's own.
            chinese = bool(CJK.search(sms.body))
            return await self._status(
                sms.from_number, keyword.code, lang, links, follow=not chinese
            )
        if keyword.kind == "rating" and keyword.rating is not None:
            if (again := await self.intake.answered(sms.sid)) is not None:
                return again  # the carrier's retry of a rating taken: the same thanks
            case = await self.store.cases.rating_pending_for(sms.from_number)
            if case is not None and case.rating_pending:
                try:
                    await self.casework.rate(case, keyword.rating, now, "sms")
                except (Conflict, InvalidTransition):  # closed meanwhile, or rated twice
                    return translate(lang, N_("This request is not waiting for a rating."))
                thanks = N_("Thank you for rating request %(code)s: %(rating)d of 5.")
                # In the request's language ("5." is no language of its own).
                said = translate(case.language, thanks) % {
                    "code": case.code,
                    "rating": keyword.rating,
                }
                await self.intake.remember_answer(sms.sid, said)
                return said
            # No rating pending: a bare digit is a message on the number's open case (an
            # answer to a member's question), and no request of its own (a second rating,
            # a slip).
            if await self.intake.thread_of(sms.from_number) is None:
                return translate(lang, NOT_WAITING)
        if keyword.kind == "thanks" and await self.intake.thread_of(sms.from_number) is None:
            return translate(lang, NOT_A_REQUEST)  # in a thread: a message on its case
        if not sms.body and not sms.media:
            return self._help(lang)
        code = None if sms.media else only_code(sms.body)
        if code is not None and await self._own_request(sms.from_number, code) is not None:
            # A request's code alone says nothing to add to it: asked after, as STATUS is.
            return await self._status(sms.from_number, code, lang, links, follow=True)
        return await self._submit(sms, lang, now, links)

    async def _submit(self, sms: InboundText, lang: str, now: datetime, links: Links) -> str:
        # Joins the number's open thread, if any: a finished case ends its thread (Casework).
        urgent = is_urgent(sms.body)
        intake = Intake(
            key=f"sms:{sms.sid}",
            channel="sms",
            text=sms.body,
            received_at=now,
            language=lang,
            phone=sms.from_number,
            media=sms.media,
            urgent=urgent,  # a text has no box to tick: its words of danger say it
        )
        config = self.config()
        # An urgent text is a request of its own, even in a thread: the standing head hears.
        within = None if urgent else config.sms.thread_within
        if within:
            await self._follow_code(sms, within)
        submitted = await self.intake.submit(intake, thread_within=within)
        if submitted.follow_up:
            # In the text's language where it says one plainly; else in the request's ("OK"
            # or a photo's caption is no language of its own: one read, for those only).
            said_in = plainly_in(sms.body)
            if said_in is None:
                case = await self.store.cases.by_code(submitted.code)
                said_in = case.language if case else lang
            return translate(said_in, N_("Added to your request %(code)s.")) % {
                "code": submitted.code
            }
        resumes = await self.duty.handling_resumes(now)
        if resumes is None and not urgent:
            received = N_(
                "Received: request %(code)s. The deputy on duty will take it up."
                " Text STATUS %(code)s for progress, or see %(url)s"
            )
            if not links.base:  # no public address configured: the keyword alone
                received = N_(
                    "Received: request %(code)s. The deputy on duty will take it up."
                    " Text STATUS %(code)s for progress."
                )
        else:  # nobody on duty takes it up now, or the standing head is told at once
            received = N_(
                "Received: request %(code)s. Text STATUS %(code)s for progress, or see %(url)s"
            )
            if not links.base:
                received = N_("Received: request %(code)s. Text STATUS %(code)s for progress.")
        parts = [translate(lang, received) % {
            "code": submitted.code,
            "url": links.follow(submitted.code, lang),
        }]  # fmt: skip
        if urgent:
            parts.append(translate(lang, URGENT_REPLY))
        elif resumes is not None:
            when = resumes.astimezone(config.point.timezone).strftime("%Y-%m-%d %H:%M")
            later = N_("Outside duty hours now: handling resumes at %(time)s.")
            parts.insert(0, translate(lang, later) % {"time": when})
        # No space between 句子, but one after a link (it would take the next words in).
        return "".join(
            part
            if i == 0 or (lang.startswith("zh") and parts[i - 1].endswith("。"))
            else " " + part
            for i, part in enumerate(parts)
        )

    async def _follow_code(self, sms: InboundText, within: timedelta) -> None:
        """A text that begins with the code of one of the number's open requests ("[CODE]
        ...", as a member's reply begins) adds to that request, whichever the number's
        thread was on: the thread moves to it. Taking a text never waits on the store: one
        it cannot read joins the thread it would have joined."""
        code = addressed_to(sms.body)
        case = await self._own_request(sms.from_number, code) if code else None
        if case is not None and case.status not in FINISHED:
            await self.intake.open_thread(sms.from_number, case.code, within)

    async def _own_request(self, phone: str, code: str) -> Case | None:
        """The request with this code, if `phone` made it; None too when the store cannot
        say within LOOKUP_WAIT (the text is then taken as any text)."""
        try:
            async with asyncio.timeout(LOOKUP_WAIT):  # a hanging store: Twilio waits 15 s
                case = await self._by_code(code)
        except (TimeoutError, *STORE_FAULTS) as exc:
            log.warning("could not look up %s for a text naming it (%r)", code, exc)
            return None
        return case if case is not None and case.submitter_phone == phone else None

    def _help(self, lang: str) -> str:
        text = N_(
            "%(point)s, 24-hour hotline: text your request and you get a case code."
            " Begin a text with [code] to add to that request; STATUS <code> for progress."
            " STOP to opt out, START to opt in again."
        )
        return translate(lang, text) % {"point": self.config().point.name}

    async def _by_code(self, code: str) -> Case | None:
        """The stored case of a code, or of the code it became (a spooled one)."""
        case = await self.store.cases.by_code(code)
        if case is None:
            alias = await self.intake.alias_of(code)
            case = await self.store.cases.by_code(alias) if alias else None
        return case

    async def _status(
        self, phone: str, typed: str | None, lang: str, links: Links, *, follow: bool
    ) -> str:
        if typed is None:  # a bare STATUS: the number's newest request, or one just sent
            case = await self.store.cases.latest_from(phone)
            code = await self.intake.thread_of(phone)
            if case is not None and case.code == code:
                code = None  # stored: as any other
        else:
            code = normalize_code(typed)
            case = await self._by_code(code) if code else None
        # Issued a moment ago, not stored yet: what /track says of it to anyone.
        pending = code if code and (typed is None or case is None) else None
        if pending and await self.intake.received_at(pending) is not None:
            registering = N_("Request %(code)s: received, being registered. Ask again shortly.")
            return translate(lang, registering) % {"code": pending}
        if pending:
            # Stored between the reads (the router stores a case, then drops its code from
            # the unrouted ones): the store has it now, as /track finds it.
            case = await self._by_code(pending) or case
        # Only the number that made a request may ask about it by text.
        if case is None or case.submitter_phone != phone:
            if typed is None:
                return translate(lang, N_("No request was made from this number."))
            unknown = N_("No request %(code)s was made from this number.")
            # The code as typed, cut short: a reply is billed by its length.
            shown = typed.upper() if len(typed) <= CODE_ECHO else typed[:CODE_ECHO].upper() + "…"
            return translate(lang, unknown) % {"code": shown}
        tz = self.config().point.timezone
        if follow:
            lang = case.language
        said = N_("Request %(code)s: %(status)s (updated %(time)s).")
        if links.base:  # the status page has the answers and the outcome a text leaves out
            said = N_("Request %(code)s: %(status)s (updated %(time)s). Details: %(url)s")
        return translate(lang, said) % {
            "code": case.code,
            "status": translate(lang, STATUS_LABELS.get(case.status, case.status)),
            "time": case.updated_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            "url": links.track(case.code),
        }
