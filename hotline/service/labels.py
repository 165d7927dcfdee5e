"""What people call each status, event, channel and outbox state: catalog ids, defined once
and translated where they are shown (pages, texts, exports)."""

from __future__ import annotations

from hotline.service.i18n import N_

STATUS_LABELS = {
    "received": N_("Received"),
    "assigned": N_("Assigned to a deputy"),
    "acknowledged": N_("Taken up"),
    "referred": N_("Referred to a department"),
    "responded": N_("Answered"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
    "reopened": N_("Reopened"),
    "withdrawn": N_("Withdrawn"),
    "rejected": N_("Not accepted"),
}

# Event kinds as the timeline shows them (actions, and what the system did by itself).
EVENT_LABELS = {
    "received": N_("Received"),
    "assigned": N_("Assigned"),
    "acknowledge": N_("Acknowledged"),
    "note": N_("Internal note"),
    "reply": N_("Reply to the submitter"),
    "refer": N_("Referred to a department"),
    "answer": N_("Department's answer"),
    "presidium": N_("Escalated to the presidium"),
    "resolve": N_("Resolved"),
    "close": N_("Closed"),
    "reopen": N_("Reopened"),
    "reassign": N_("Reassigned"),
    "withdraw": N_("Withdrawn"),
    "reject": N_("Not accepted"),
    "rated": N_("Rated by the submitter"),
    "auto-close": N_("Closed without a rating"),
    "message": N_("Message from the submitter"),
    "escalated": N_("Escalated to the standing head"),
    "handoff": N_("Handed over at the change of shift"),
}

CHANNEL_LABELS = {
    "web": N_("web form"),
    "sms": N_("SMS"),
    "kiosk": N_("kiosk"),
    "walk-in": N_("walk-in"),
    "open311": "Open311",
    "api": N_("partner API"),
}

OUTBOX_LABELS = {
    "queued": N_("queued"),
    "sending": N_("sending"),
    "unknown": N_("checking whether it went"),
    "queued-provider": N_("with the provider"),
    "accepted": N_("accepted"),
    "scheduled": N_("scheduled"),
    "sending-provider": N_("sending"),
    "sent": N_("sent"),
    "delivered": N_("delivered"),
    "read": N_("read"),
    "undelivered": N_("undelivered"),
    "failed": N_("failed"),
    "canceled": N_("canceled"),
    "not-sent": N_("not sent"),
    "opted-out": N_("opted out"),
}

# What became of a webhook delivery.
WEBHOOK_LABELS = {
    "queued": N_("queued"),
    "sending": N_("sending"),
    "retrying": N_("will try again"),
    "delivered": N_("delivered"),
    "failed": N_("given up"),
}

# The reports' figures, as the case list behind each one is titled.
MEASURE_LABELS = {
    "received": N_("received"),
    "response_counted": N_("counted in the response rate (answered, or past the target)"),
    "response_met": N_("first response within the target"),
    "resolution_counted": N_("counted in the resolution rate (resolved, or past the target)"),
    "resolution_met": N_("resolved within the target and not reopened since"),
    "rated": N_("rated by the submitter"),
    "satisfied": N_("rated 4 or 5"),
    "referred": N_("referred to a department"),
    "referrals": N_("referred to a department"),
    "referral_counted": N_("referral answered, or past its due date"),
    "referral_on_time": N_("referral answered by its due date"),
    "referral_late": N_("referral past its due date without an answer"),
    "presidium": N_("escalated to the presidium"),
    "overdue": N_("overdue now"),
    "not_counted": N_("withdrawn or rejected"),
}

# Days of the week, Monday first (the roster's columns).
WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))

# Form fields as a refusal names them ("名称：1 至 100 个字符", never "name: ...").
FIELD_LABELS = {
    "name": N_("Name"),
    "tag": N_("Tag"),
    "label": N_("Where it hangs"),
    "url": N_("Address"),
    "secret": N_("Signing secret"),
    "scope": N_("Scope"),
    "due": N_("Due date"),
    "from": N_("Start date"),
    "to": N_("End date"),
    "start": N_("Start"),
    "end": N_("End"),
    "first": N_("First shift"),
    "second": N_("Second shift"),
    "kind": N_("Kind of change"),
    "text": N_("Text"),
    "note": N_("Note"),
    "reply": N_("Reply"),
    "outcome": N_("Outcome"),
    "reason": N_("Reason"),
    "answer": N_("Department's answer"),
    "department": N_("Department"),
    "member": N_("Member"),
    "period": N_("Period"),
    "month": N_("Month"),
    "measure": N_("Figure"),
    "revoke": N_("Revoke"),
    "id": N_("Number"),
    "title": N_("Title"),
    "body": N_("Content"),
    "edit": N_("Number"),
    "delete": N_("Number"),
    "code": N_("Code"),
    "phone": N_("Phone"),
    "category": N_("Topic"),
    "seen_status": N_("Status seen"),
    "seen_assignee": N_("Assignee seen"),
    "topic": N_("Theme"),
    "place": N_("Place"),
    "date": N_("Date"),
    "details": N_("What it is about"),
    "deputies": N_("Deputies attending"),
    "departments": N_("Departments invited"),
    "capacity": N_("Places for businesses"),
    "reception": N_("Reception"),
    "company": N_("Company"),
    "csrf_token": N_("The form's security code"),
    "signup": N_("Sign-up"),
    "before": N_("Page"),
}

# How a referral stands or ended (service/cases.Referral.state).
REFERRAL_LABELS = {
    "on-time": N_("answered on time"),
    "late": N_("answered late"),
    "taken-back": N_("taken back"),
    "taken-back-late": N_("taken back after its due date"),
    "waiting": N_("waiting for the answer"),
    "overdue": N_("past due, no answer"),
}

# Why a webhook delivery was not delivered, as its stored error begins (the exception's
# name as channels/webhooks writes it, or service/webhooks' own words), most specific first.
WEBHOOK_ERRORS = (
    ("revoked", N_("the webhook was revoked")),
    ("not tried", N_("not tried: another delivery to this partner had just failed")),
    ("signing secret", N_("its signing secret cannot be read by this process (see the log)")),
    ("TimeoutError", N_("no answer in time")),
    ("ClientConnectorCertificateError", N_("its certificate was not accepted")),
    ("ClientConnectorSSLError", N_("its certificate was not accepted")),
    ("ClientSSLError", N_("its certificate was not accepted")),
    ("ClientConnectorDNSError", N_("its host name was not found")),
    ("NowhereAddress", N_("its host name leads to an address no partner can be at")),
    ("ClientConnectorError", N_("could not connect")),
    ("ServerDisconnectedError", N_("the connection was closed before an answer")),
    ("InvalidURL", N_("the address cannot be used")),
)


def webhook_error(stored: str) -> str:
    """The catalog id of what a delivery's stored error says, for people."""
    for start, label in WEBHOOK_ERRORS:
        if stored.startswith(start):
            return label
    return N_("no usable answer")


LABELS = {
    "webhook_error": webhook_error,
    "measure": MEASURE_LABELS,
    "referral": REFERRAL_LABELS,
    "status": STATUS_LABELS,
    "event": EVENT_LABELS,
    "channel": CHANNEL_LABELS,
    "outbox": OUTBOX_LABELS,
    "webhook": WEBHOOK_LABELS,
    "weekdays": WEEKDAYS,
}
