"""The process's Prometheus metrics (prometheus-client), on a registry of its own per app.

Counters and histograms are what this process did since it started (intake it answered,
cases its router stored); gauges are read at scrape time from Redis and the database, so
every process reports the same backlog and case figures. Several processes: scrape each
(`hotline serve` on its port, `hotline worker` on its health port) and sum the counters.
`serve` in its default layout gives its worker child's router figures as its own (the
child's health port is on loopback only: web/metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds from a request's receipt to its case being stored: intake answers at once, a
# worker should store within a second, a backlog shows as the upper buckets filling.
RECEIPT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
INTAKE_OUTCOMES = ("queued", "duplicate", "spooled", "refused")


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.intake = Counter(
            "hotline_intake",
            "Requests answered by intake, by channel and outcome (queued: a new request in the"
            " stream; duplicate: a retry of one already taken; spooled: kept on disk while Redis"
            " was unreachable; refused: a 4xx)",
            ["channel", "outcome"],
            registry=r,
        )
        self._intake_children: dict[tuple[str, str], Counter] = {}
        self.router_batch = Histogram(
            "hotline_router_batch_size", "Entries the router took per turn",
            buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.router_store = Histogram(
            "hotline_router_store_seconds",
            "Time the router took to store one batch of new cases (one transaction)",
            registry=r,
        )
        self.receipt_to_stored = Histogram(
            "hotline_receipt_to_stored_seconds",
            "From a request's receipt to its case being stored",
            buckets=RECEIPT_BUCKETS,
            registry=r,
        )
        self.stream_length = Gauge(
            "hotline_stream_length", "Entries in a Redis stream", ["stream"], registry=r
        )
        self.pending = Gauge(
            "hotline_stream_pending",
            "Entries read by a consumer group and not yet acknowledged",
            ["stream"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "hotline_dead_letters", "Entries set aside after failing", ["stream"], registry=r
        )
        self.outbox = Gauge("hotline_outbox", "Outbox rows by status", ["status"], registry=r)
        self.open_cases = Gauge(
            "hotline_open_cases", "Cases not yet closed, by status", ["status"], registry=r
        )
        self.overdue_referrals = Gauge(
            "hotline_overdue_referrals",
            "Referred cases past the department's due date",
            registry=r,
        )
        self.live_clients = Gauge(
            "hotline_live_clients", "Console live views open on this process", registry=r
        )
        self.spool_files = Gauge(
            "hotline_spool_files",
            "Requests in this data dir's spool, waiting for Redis",
            registry=r,
        )
        self.code_filter_fill = Gauge(
            "hotline_code_filter_fill",
            "Share of the case-code filter's bits set: past about 0.6 intake passes over more"
            " candidate codes, and a point needs a bigger filter",
            registry=r,
        )
        self.code_filter_ready = Gauge(
            "hotline_code_filter_ready",
            "Whether Redis's case-code filter was built from the store (0: intake spools"
            " until the spool drainer rebuilds it)",
            registry=r,
        )
        self.up = Gauge(
            "hotline_backend_up",
            "Whether Redis and the database answered the scrape (and, on `serve` with its"
            " worker child, whether the child gave its router figures)",
            ["backend"], registry=r,
        )  # fmt: skip

    def intake_answered(self, channel: str, outcome: str) -> None:
        # The labelled child kept: looking it up took five times the increment, on every intake.
        child = self._intake_children.get((channel, outcome))
        if child is None:
            child = self._intake_children[channel, outcome] = self.intake.labels(
                channel=channel, outcome=outcome
            )
        child.inc()
