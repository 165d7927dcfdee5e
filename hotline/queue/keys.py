"""Every Redis key, stream and group name the hotline uses, in one place."""

PREFIX = "hotline:"

# Intake: channels append here; the router group consumes.
INTAKE_STREAM = PREFIX + "intake"
ROUTER_GROUP = "router"
# Entries that failed too often or cannot be parsed: kept for a person to look at.
INTAKE_DEAD = PREFIX + "intake:dead"


def alive(group: str, consumer: str) -> str:
    """A consumer's heartbeat (expires unless renewed): entries held by a consumer whose
    heartbeat is gone are reclaimed at once, not after the idle timeout."""
    return f"{PREFIX}alive:{group}:{consumer}"


def failures(stream: str) -> str:
    """Hash entry id -> failed attempts, per stream (dropped once the entry is done)."""
    return stream + ":failures"


# Every case code ever issued, as a Bloom filter: a bitmap of fixed size (CODE_FILTER_BITS),
# so it does not grow with the cases stored. A code whose bits are not all set was never
# issued; one whose bits are all set may have been, and intake takes its next candidate.
CODE_FILTER = PREFIX + "code-filter"
CODE_FILTER_BITS = 1 << 25  # 4 MiB: under 1 false "taken" in 10,000 codes at 1M codes issued
CODE_FILTER_HASHES = 5
# Set with the filter's rebuild from the store: the filter holds every stored code. Intake
# refuses to issue a code without it (and spools), so a Redis that lost its data (a new one,
# flushed, failed over) never hands out a stored case's code; the spool drainer rebuilds.
CODE_FILTER_READY = PREFIX + "code-filter:ready"
# Codes issued but not routed into the store yet: hash code -> received_at (UTC text), so
# /track can answer "received" before the router gets to them. The router drops a code once
# its case is stored: the hash holds the backlog, not the history.
UNROUTED_CODES = PREFIX + "unrouted-codes"


def intake_key(key: str) -> str:
    """Idempotency: intake key -> case code, for a recent window (IDEMPOTENCY_WINDOW in
    queue/intake.py). An older retry is caught by the store's unique intake key."""
    return f"{PREFIX}intake-key:{key}"


def intake_request(key: str) -> str:
    """An API intake key's request, as a digest, for the same window: a retry must be the
    same request; another request under the key is refused (not silently given its code)."""
    return f"{PREFIX}intake-request:{key}"


# Before codes were filtered: every code and every intake key in two hashes that only grew.
# Read once to build the filter, then deleted.
LEGACY_CODES = PREFIX + "codes"
LEGACY_INTAKE_KEYS = PREFIX + "intake:keys"
# Spooled codes that turned out to be another code (Redis took the intake, its answer was
# lost): hash spooled code -> the case's code. Rare; kept so the code handed out works.
CODE_ALIASES = PREFIX + "code-aliases"

# Outbound messages: the outbox row id of each message to send; the sender group consumes.
OUTBOUND_STREAM = PREFIX + "outbound"
SENDER_GROUP = "sender"
OUTBOUND_DEAD = PREFIX + "outbound:dead"

# The JSON API's rate limit: requests per token per minute (+ token id:minute), expiring.
API_RATE = PREFIX + "api-rate:"

# SMS threading: the case a number's texts join, with a TTL of the point's thread window.
SMS_THREAD = PREFIX + "sms:thread:"  # + E.164 number
SMS_ANSWER = PREFIX + "sms:answer:"  # + a carrier's message id: what a rating was answered

# Console sessions: hash per session (keyed by the SHA-256 of its token), and per member
# the set of their session keys, so that a password change can end them all.
SESSION = PREFIX + "session:"
MEMBER_SESSIONS = PREFIX + "member-sessions:"
# Failed sign-ins, a sorted set of timestamps per account and per address.
LOGIN_FAILURES = PREFIX + "login-failures:"
# Unknown codes asked for on /track, a counter per client address (expires with its window).
TRACK_MISSES = PREFIX + "track-misses:"
SIGNUPS = PREFIX + "reception-signups:"  # + client address: sign-ups in the window

# Bumped whenever an override, swap or absence changes: processes reload their schedule.
DUTY_VERSION = PREFIX + "duty-version"

# Bumped whenever a member, department or category is edited in the console: processes
# rebuild their point config.
DIRECTORY_VERSION = PREFIX + "directory-version"

# Case changes for live views: pub/sub channel carrying {"code", "kind"}.
CASE_EVENTS = PREFIX + "case-events"
