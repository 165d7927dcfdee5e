"""Texts to members about their cases: composed here, sent through the outbox."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from hotline.service.cases import Case, Intake, Status, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.i18n import N_, duration, translate
from hotline.service.links import Links
from hotline.service.outbox import Outbox
from hotline.service.store import Store
from hotline.service.store.outbox import Draft

SNIPPET = 40

# What the submitter is told at each step they see (by SMS when they left a number).
NOTICES = {
    Status.ASSIGNED: N_("Your request %(code)s is with %(member)s, the deputy handling it."),
    Status.REFERRED: N_("Your request %(code)s has been referred to %(department)s."),
    Status.RESPONDED: N_("There is an answer on your request %(code)s: %(url)s"),
    Status.RESOLVED: N_(
        "Your request %(code)s is resolved: %(outcome)s Please rate how it was handled:"
        " reply 1 (poor) to 5 (very good)."
    ),
    Status.REOPENED: N_("Your request %(code)s is being looked at again. Follow it: %(url)s"),
    # The reason a member gave (the console says the submitter is told).
    Status.WITHDRAWN: N_("Your request %(code)s has been withdrawn: %(reason)s"),
    Status.REJECTED: N_("Your request %(code)s was not taken up: %(reason)s"),
}
# A department's answer kept inside the point: nothing new to read on the status page.
ANSWERED_INSIDE = N_(
    "The department has answered on your request %(code)s; the deputy handling it will"
    " follow up with you."
)


# Twilio refuses a longer message (error 21617): a longer text is cut, ending with where the
# whole of it is read.
SMS_MAX = 1600
_ENDS_SENTENCE = tuple("。！？!?.…；;」）)\"'")


def sentence(text: str, language: str) -> str:
    """A member's words made a sentence of the notice they sit in: "路灯已修复" would run into
    the rating request that follows it."""
    text = text.strip()
    if not text or text.endswith(_ENDS_SENTENCE):
        return text
    return text + ("." if language.startswith("en") else "。")


def fit_sms(body: str, rest: str) -> str:
    """`body`, or as much of it as one SMS carries followed by "… " and `rest` (where the
    whole is read)."""
    if len(body) <= SMS_MAX:
        return body
    tail = "… " + rest
    return body[: SMS_MAX - len(tail)] + tail


def snippet(text: str, length: int = SNIPPET) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1] + "…"


class Notifier:
    def __init__(
        self,
        outbox: Outbox,
        config: Callable[[], PointConfig],
        links: Links,
        clock: Callable[[], datetime],
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.links = links
        self.clock = clock

    def _console_link(self, code: str) -> str:
        return " " + self.links.console_case(code) if self.links.base else ""

    def _category(self, code: str | None, lang: str) -> str:
        category = self.config().category(code) if code else None
        return category.name(lang) if category else translate(lang, N_("no topic"))

    def assigned_draft(
        self,
        code: str,
        category: str | None,
        text: str,
        target: str | None,
        copy: bool = False,
        *,
        urgent: bool = False,
        handed: bool = False,
    ) -> Draft | None:
        """The text telling `target` (the assignee, or a member copied) about a new case, or
        one `handed` to them (reassigned, handed on with the duty), marked urgent when the
        submitter marked it so; None when they have no number."""
        config = self.config()
        member = config.member(target) if target else None
        if member is None or not member.phone:
            return None
        lang = config.point.language
        if copy:
            message = N_("Copy: request %(code)s (%(category)s): %(text)s")
        elif handed:
            message = N_("Handed to you: request %(code)s (%(category)s): %(text)s")
        else:
            message = N_("New request %(code)s (%(category)s): %(text)s")
        body = translate(lang, message) % {
            "code": code,
            "category": self._category(category, lang),
            "text": snippet(text) or translate(lang, N_("(picture message)")),
        }
        if urgent:
            body = translate(lang, N_("[URGENT] ")) + body
        return Draft(
            "assigned", member.id, member.phone, body + self._console_link(code), member.id
        )

    def notice_draft(
        self,
        code: str,
        phone: str | None,
        language: str,
        status: str,
        step: str,
        *,
        assignee_id: str | None = None,
        department_id: str | None = None,
        outcome: str | None = None,
        reason: str | None = None,
        answer_public: bool = True,
    ) -> Draft | None:
        """The text telling the submitter where their request stands, in their language;
        None when they left no number or do not hear about this status. A department's
        answer not marked public (`answer_public`) is only said to have come."""
        if not phone or status not in NOTICES:
            return None
        config = self.config()
        member = config.member(assignee_id) if assignee_id else None
        department = config.department(department_id) if department_id else None
        notice = NOTICES[Status(status)]
        if status == Status.RESPONDED and not answer_public:
            notice = ANSWERED_INSIDE
        follow = self.links.follow(code, language)
        values = {
            "code": code,
            "member": member.name if member else "",
            "department": department.name if department else "",
            "url": follow,
            "outcome": sentence(outcome or "", language),
            "reason": reason or "",
        }
        body = translate(language, notice) % values
        if len(body) > SMS_MAX and outcome:  # the outcome is cut, not the rating request
            keep = len(values["outcome"]) - (len(body) - SMS_MAX) - 1
            values["outcome"] = values["outcome"][: max(keep, 0)] + "…"
            body = translate(language, notice) % values
        return Draft("notice", step, phone, fit_sms(body, follow))

    def new_case_drafts(
        self,
        code: str,
        intake: Intake,
        assignee_id: str | None,
        copy: tuple[str, ...],
        *,
        held: bool = False,
    ) -> tuple[Draft, ...]:
        """The texts a new case sends, stored with it: to its assignee, to each member
        copied, and to the submitter once it is assigned. A case `held` for the next shift
        does not text its member now (off duty, at night perhaps): their shift's summary
        counts it when the shift begins."""
        about = (code, intake.category, intake.text)
        drafts = [] if held else [self.assigned_draft(*about, assignee_id, urgent=intake.urgent)]
        drafts += [self.assigned_draft(*about, m, True, urgent=intake.urgent) for m in copy]
        if assignee_id:
            drafts.append(
                self.notice_draft(code, intake.phone, intake.language, Status.ASSIGNED,
                                  "assigned", assignee_id=assignee_id)
            )  # fmt: skip
        return tuple(d for d in drafts if d is not None)

    async def _queue(self, case: Case, draft: Draft | None) -> None:
        if draft is not None:
            await self.outbox.enqueue(
                draft.purpose_key(case.id), draft.to_number, draft.body, self.clock(),
                case_id=case.id, member_id=draft.member_id,
            )  # fmt: skip

    async def case_handed(self, case: Case, event_id: int) -> None:
        """Tell the member a case was handed to (reassigned), once per hand-over: a member
        copied on it before, or handed it back (A -> B -> A), is told all the same."""
        draft = self.assigned_draft(
            case.code, case.category, case.text, case.assignee_id, urgent=case.urgent, handed=True
        )
        if draft is not None:
            draft = dataclasses.replace(draft, kind="handed", tail=f"{event_id}:{draft.tail}")
        await self._queue(case, draft)

    async def submitter_notice(
        self, case: Case, step: str, reason: str | None = None, *, answer_public: bool = True
    ) -> None:
        """Tell the submitter where their request stands, once per step, in their language
        (with the `reason` a member gave to withdraw or reject it)."""
        draft = self.notice_draft(
            case.code, case.submitter_phone, case.language, case.status, step,
            assignee_id=case.assignee_id, department_id=case.department_id,
            outcome=case.outcome, reason=reason, answer_public=answer_public,
        )  # fmt: skip
        await self._queue(case, draft)

    async def follow_up(self, case: Case, intake: Intake) -> None:
        """Tell the assignee the submitter wrote again on an open case."""
        config = self.config()
        member = config.member(case.assignee_id) if case.assignee_id else None
        if member is None or not member.phone:
            return
        lang = config.point.language
        text = translate(lang, N_("New message on request %(code)s: %(text)s")) % {
            "code": case.code,
            "text": snippet(intake.text) or translate(lang, N_("(picture message)")),
        }
        await self.outbox.enqueue(
            f"message:{intake.key}:{member.id}",
            member.phone,
            text + self._console_link(case.code),
            self.clock(),
            case_id=case.id,
            member_id=member.id,
        )

    async def referrals_overdue(self, store: Store, now: datetime) -> int:
        """Remind the assignee once when a referral passes its due date."""
        sent = 0
        config = self.config()
        for case in await store.cases.referrals_overdue(now):
            member = config.member(case.assignee_id) if case.assignee_id else None
            if member is None or not member.phone or case.referral_due is None:
                continue
            dept = config.department(case.department_id) if case.department_id else None
            lang = config.point.language
            text = translate(lang, N_("Referral of %(code)s to %(department)s is overdue.")) % {
                "code": case.code,
                "department": dept.name if dept else "",
            }
            await self.outbox.enqueue(
            f"referral-overdue:{case.id}:{to_utc_text(case.referral_due)}",
                member.phone, text + self._console_link(case.code), now,
                case_id=case.id, member_id=member.id,
            )  # fmt: skip
            sent += 1
        return sent

    async def text_member(
        self, member_id: str, purpose: str, text: str, case_id: int | None = None
    ) -> None:
        """A text to a member, once per purpose (about case `case_id`, listed on its page)."""
        member = self.config().member(member_id)
        if member is None or not member.phone:
            return
        await self.outbox.enqueue(
            purpose, member.phone, text, self.clock(), case_id=case_id, member_id=member.id
        )

    async def low_rating(self, case: Case, rating: int, step: str, had_it: str | None) -> None:
        """The standing head, who has the case now, and the member who had it hear that its
        submitter rated it low and it is being looked at again (each once)."""
        lang = self.config().point.language
        text = translate(
            lang, N_("Rated %(rating)d of 5, reopened: request %(code)s (%(category)s): %(text)s")
        ) % {
            "rating": rating,
            "code": case.code,
            "category": self._category(case.category, lang),
            "text": snippet(case.text) or translate(lang, N_("(picture message)")),
        }
        for member_id in dict.fromkeys(m for m in (case.assignee_id, had_it) if m):
            await self.text_member(
                member_id, f"low-rating:{step}:{member_id}", text + self._console_link(case.code),
                case.id,
            )  # fmt: skip

    async def escalated(self, case: Case, head: str, step: int) -> None:
        """The standing head hears that a case is still not acknowledged (each step once)."""
        lang = self.config().point.language
        waited = (self.clock() - case.received_at).total_seconds()
        text = translate(
            lang, N_("Not acknowledged after %(waited)s: request %(code)s (%(who)s).")
        ) % {
            "waited": duration(waited, lang),
            "code": case.code,
            "who": case.assignee_name or "",
        }
        await self.text_member(
            head, f"escalate:{case.id}:{step}", text + self._console_link(case.code), case.id
        )
