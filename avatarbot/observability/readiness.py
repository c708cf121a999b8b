"""The checks behind `/readyz`. Each returns None when ready, else a short reason an operator
can act on; none prints a URL, which may hold the Redis password."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import redis

from avatarbot.errors import AvatarbotError

Check = Callable[[], str | None]

PROBE_TIMEOUT_S = 2.0  # a probe that waits longer than its prober gets no answer at all


def probe_client(settings) -> redis.Redis:
    """A client that gives up quickly: a probe that hangs is worse than one that says no."""
    from avatarbot.tasks.connection import resolve_redis_url

    return redis.Redis.from_url(
        resolve_redis_url(settings),
        decode_responses=True,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        socket_timeout=PROBE_TIMEOUT_S,
    )


def redis_check(settings) -> Check:
    clients: list[redis.Redis] = []

    def check() -> str | None:
        try:
            if not clients:
                clients.append(probe_client(settings))
            clients[0].ping()
        except (redis.exceptions.RedisError, OSError, AvatarbotError) as error:
            return f"redis: unreachable ({type(error).__name__})"
        return None

    return check


def engine_check(settings) -> Check:
    """The worker's engine can load here. Decided once, at start, without loading it: loading
    HunyuanVideo-Avatar takes minutes and belongs to the pool process that owns the GPU, and
    the worker's parent must never touch CUDA (DESIGN §5)."""
    reason = _engine_problem(settings)
    return lambda: reason


def _engine_problem(settings) -> str | None:
    if settings.render.engine != "hunyuan":
        return None
    if importlib.util.find_spec("torch") is None:
        return "engine hunyuan: torch is not installed (pip install 'avatarbot[gpu]')"
    if settings.hunyuan.weights_dir is None:
        return "engine hunyuan: hunyuan.weights_dir is not set"
    from avatarbot.avatar.hunyuan.weights import check_weights

    problems = check_weights(settings.hunyuan.weights_dir)
    return f"engine hunyuan: {problems[0]}" if problems else None
