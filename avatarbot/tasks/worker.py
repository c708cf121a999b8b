"""`avatarbot worker`: a Celery worker that renders jobs from the `gpu` queue.

Run one per GPU, each pinned with CUDA_VISIBLE_DEVICES, with concurrency 1: a render owns its
GPU, and a second process on the same card only competes for memory.

    CUDA_VISIBLE_DEVICES=0 avatarbot worker &
    CUDA_VISIBLE_DEVICES=1 avatarbot worker &

or one worker whose renders each span several GPUs (context parallelism, engine hunyuan):

    avatarbot worker --gpus 0,1,2,3

The pool is prefork, because Celery's time limits only work there, and so that the parent (which
never touches CUDA) survives a render process that dies. Each pool process loads the engine on
its first job and keeps it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from celery import signals

from avatarbot.observability.processes import disable_multiprocess, enable_multiprocess
from avatarbot.tasks.redis_server import die_with_parent

log = logging.getLogger(__name__)


def run_worker(settings, concurrency: int, queues: str, gpus: str | None = None) -> int:
    # Before anything imports prometheus_client: pool processes then write their metrics where
    # this process, which serves /metrics, can add them up.
    metrics_dir = enable_multiprocess() if settings.metrics.port is not None else None
    if metrics_dir is not None:
        log.info("pool metrics in %s", metrics_dir)
    try:
        return _run_worker(settings, concurrency, queues, gpus)
    finally:
        if metrics_dir is not None:
            disable_multiprocess(metrics_dir)


def _run_worker(settings, concurrency: int, queues: str, gpus: str | None) -> int:
    from avatarbot.observability.endpoints import start_worker_endpoints
    from avatarbot.tasks.app import create_app

    if gpus:
        _span_gpus(settings, gpus, concurrency)
    app = create_app(settings)
    consuming = threading.Event()
    signals.worker_ready.connect(lambda **_: consuming.set(), weak=False)
    signals.worker_shutdown.connect(lambda **_: consuming.clear(), weak=False)
    endpoints = start_worker_endpoints(settings, consuming)
    signals.worker_process_init.connect(_pool_process_started, weak=False)
    stop_watch = threading.Event()
    signals.worker_ready.connect(_watch_orphans_when_ready(settings, app, stop_watch), weak=False)
    signals.worker_shutdown.connect(lambda **_: stop_watch.set(), weak=False)
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    name = f"avatarbot-gpu{gpu.replace(',', '_')}" if gpu else f"avatarbot-{os.getpid()}"
    argv = [
        "worker",
        f"--hostname={name}@%h",
        f"--concurrency={concurrency}",
        f"--queues={queues}",
        "--pool=prefork",
        f"--loglevel={settings.log_level}",
        "--without-gossip",  # workers don't need each other's heartbeats; Flower uses events
        "--without-mingle",
    ]
    try:
        app.worker_main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        if endpoints is not None:
            endpoints.stop()
    return 0


def _span_gpus(settings, gpus: str, concurrency: int) -> None:
    """`--gpus 0,1,...`: the pool process renders each clip on all of them together (it becomes
    rank 0 of a process group and starts one follower per other GPU, avatar.hunyuan.parallel)."""
    indices = [part.strip() for part in gpus.split(",") if part.strip()]
    if not indices or not all(part.isdigit() for part in indices) or len(set(indices)) != len(indices):
        raise SystemExit(f"--gpus wants distinct GPU indices separated by commas, e.g. 0,1; got {gpus!r}")
    if concurrency != 1:
        raise SystemExit("--gpus renders one clip at a time on all the GPUs listed; use --concurrency 1")
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(indices)
    settings.hunyuan.gpus_per_render = len(indices)
    log.info("each render spans GPUs %s (%s)", ",".join(indices), settings.hunyuan.context_parallel)


def _pool_process_started(**_) -> None:
    """A render process must not outlive the worker that owns it (SIGKILLed parent included).

    It must also return quickly: Celery kills a pool process that takes 4 s here, which is why
    the engine loads on the first job instead."""
    die_with_parent(signal.SIGKILL)


def _watch_orphans_when_ready(settings, app, stop: threading.Event):
    def watch(**_) -> None:
        from avatarbot.tasks.recovery import start_orphan_watch

        start_orphan_watch(settings, app, stop)

    return watch
