"""Prometheus metrics of one service instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
AGE_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram(
            "contextlake_request_seconds",
            "HTTP request latency by route",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "contextlake_decision_stage_seconds",
            "time of each stage of a decision (database, model)",
            ["route", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.feature_age = Histogram(
            "contextlake_feature_age_seconds",
            "age of each feature in the vectors decisions were made on",
            ["feature_set", "feature"],
            buckets=AGE_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "contextlake_decisions_total", "decisions by outcome", ["route", "model", "outcome"], registry=r
        )
        self.ingest_lag = Gauge(
            "contextlake_ingest_lag_seconds",
            "landed minus event time over the recent window (lake.ingest_lag)",
            ["source", "quantile"],
            registry=r,
        )
        self.events = Counter(
            "contextlake_events_total", "events sent to /v1/events by outcome", ["source", "status"], registry=r
        )
        self.pool = Gauge("contextlake_pool_connections", "connection pool of the service", ["state"], registry=r)
        self.models = Gauge("contextlake_models_loaded", "model versions loaded", ["status"], registry=r)
        self.log_pending = Gauge("contextlake_decision_log_pending", "decisions waiting to be logged", registry=r)
        self.log_written = Gauge(
            "contextlake_decision_log_written", "decisions logged by the batched writer", registry=r
        )
        self.dead_letters = Counter(
            "contextlake_cdc_dead_letters_total",
            "change events refused by the lake and kept in lake.cdc_dead_letters",
            registry=r,
        )
        self.admission = Gauge(
            "contextlake_admission_requests", "requests in progress and waiting for a slot", ["state"], registry=r
        )
        self.shed = Counter(
            "contextlake_shed_requests_total", "requests refused with 503 by admission control", ["reason"], registry=r
        )
        self._age_children: dict[tuple[str, str], Histogram] = {}

    def observe_ages(self, feature_set: str, ages: dict[str, float | None]) -> None:
        for feature, age in ages.items():
            if age is None:
                continue
            child = self._age_children.get((feature_set, feature))
            if child is None:
                child = self._age_children[(feature_set, feature)] = self.feature_age.labels(feature_set, feature)
            child.observe(age)


class TimingMiddleware:
    """Observe every HTTP request's latency under its route template (not its raw path); a plain ASGI
    middleware, so it adds no task or stream per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request_seconds.labels(path, scope["method"], str(status)).observe(time.perf_counter() - t0)
