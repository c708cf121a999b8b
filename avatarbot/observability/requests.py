"""What the request flow (service/lifecycle.py) records for each platform: how fast a request
gets its first answer, why requests are refused, and how deliveries go."""

from __future__ import annotations

import time

from avatarbot.observability import metrics


class FirstAnswer:
    """Times one request from reaching the flow to its first answer, whichever answer that is
    (the acknowledgement, or a refusal before it); later answers don't count."""

    def __init__(self, platform: str):
        self.platform = platform
        self.started = time.monotonic()
        self.done = False

    def answered(self) -> None:
        if not self.done:
            self.done = True
            metrics.ACK_SECONDS.labels(self.platform).observe(time.monotonic() - self.started)


def observe_refusal(platform: str, code: str) -> None:
    metrics.REFUSALS.labels(platform, code).inc()


def observe_delivery(platform: str, record: dict | None) -> None:
    """One delivery attempt, from the record it finished with (None: it is to be tried again)."""
    metrics.DELIVERIES.labels(platform, delivery_outcome(record)).inc()


def delivery_outcome(record: dict | None) -> str:
    """retry, gave_up (transient errors until the attempts ran out), undeliverable (the platform
    refused for good), message (a failure, or a clip that could not be sent, explained) or clip."""
    if record is None:
        return "retry"
    if "gave_up" in record:
        return "gave_up"
    if "undeliverable" in record:
        return "undeliverable"
    if record.get("error_code"):
        return "message"
    return "clip"
