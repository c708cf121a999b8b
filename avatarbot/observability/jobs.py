"""Jobs by state, read from Redis when Prometheus scrapes: the queue as it is now.

A gauge kept by each process would be wrong as soon as two processes share a queue; Redis
already knows the answer. It counts the jobs not yet delivered (queued, running, encoding, and
finished ones waiting for their bot), from the per-platform pending indexes the bots watch, so
a scrape reads a few short lists (one per platform), never every job ever made.
"""

from __future__ import annotations

import logging
from collections import Counter

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from avatarbot.errors import AvatarbotError
from avatarbot.observability import metrics
from avatarbot.tasks.jobs import JobStore
from avatarbot.vocab import JobState, Platform

log = logging.getLogger(__name__)


def jobs_by_state(store: JobStore) -> Counter[str]:
    """Undelivered jobs per state, every platform together."""
    counts: Counter[str] = Counter({str(state): 0 for state in JobState if state != JobState.DELIVERED})
    for platform in Platform:
        for job in store.pending(platform):
            counts[str(job.state)] += 1
    return counts


class JobsCollector(Collector):
    """Jobs by state and whether Redis answered, read at each scrape."""

    def __init__(self, store_factory):
        self._store_factory = store_factory
        self._store: JobStore | None = None

    def collect(self):
        up = GaugeMetricFamily(metrics.REDIS_UP, metrics.REDIS_UP_HELP)
        try:
            if self._store is None:
                self._store = self._store_factory()
            counts = jobs_by_state(self._store)
        except (redis.exceptions.RedisError, OSError, AvatarbotError) as error:
            log.debug("metrics: Redis unreachable (%s)", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily(metrics.JOBS_BY_STATE, metrics.JOBS_BY_STATE_HELP, labels=["state"])
        for state, count in sorted(counts.items()):
            jobs.add_metric([state], count)
        yield jobs

    def describe(self):
        return []  # read at scrape time; nothing to check at registration
