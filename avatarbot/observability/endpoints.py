"""Starting the endpoints of each kind of process, with the checks that make it ready."""

from __future__ import annotations

import threading
from collections.abc import Callable

from avatarbot.observability.server import HealthServer, start_health_server


def start_worker_endpoints(settings, consuming: threading.Event | None = None) -> HealthServer | None:
    """A render worker: ready when Redis answers, its engine can load and (when `consuming` is
    given) Celery has started taking tasks. Also serves the queue's jobs by state."""
    if settings.metrics.port is None:
        return None
    from avatarbot.observability.jobs import JobsCollector
    from avatarbot.observability.processes import serving_registry
    from avatarbot.observability.readiness import engine_check, probe_client, redis_check
    from avatarbot.tasks.jobs import JobStore

    registry = serving_registry()
    registry.register(JobsCollector(lambda: JobStore(probe_client(settings), result_ttl_s=settings.jobs.result_ttl_s)))
    checks = {"redis": redis_check(settings), "engine": engine_check(settings)}
    if consuming is not None:
        checks["queue"] = lambda: None if consuming.is_set() else "queue: not consuming tasks (starting or stopping)"
    return _start(settings, checks, registry)


def start_bot_endpoints(settings, platform: str, connected: Callable[[], bool]) -> HealthServer | None:
    """A bot: ready when Redis answers and `connected()` says it is connected to its platform."""
    if settings.metrics.port is None:
        return None
    from avatarbot.observability.processes import serving_registry
    from avatarbot.observability.readiness import redis_check

    def platform_check() -> str | None:
        return None if connected() else f"{platform}: not connected"

    return _start(settings, {"redis": redis_check(settings), platform: platform_check}, serving_registry())


def _start(settings, checks, registry) -> HealthServer | None:
    try:
        return start_health_server(settings, checks, registry)
    except OSError as error:
        where = f"{settings.metrics.host}:{settings.metrics.port}"
        raise ValueError(f"cannot serve metrics on {where}: {error.strerror or error}") from error
