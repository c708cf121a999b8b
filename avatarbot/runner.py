"""`avatarbot run`: everything on one machine, nothing to set up.

Starts, as child processes of this one:
1. Redis: the configured `redis.url`, or else an embedded redis-server with its files under
   `<data_dir>/redis` (append-only, so queued jobs survive a restart), on a free loopback port.
   Its URL goes to `<data_dir>/run/redis.url`, where `avatarbot animate --queue` finds it;
2. a render worker (unless --no-worker);
3. each bot that has a token;
4. the web page, when `web.enabled`.

Nothing may outlive this process, however it stops:
- SIGINT / SIGTERM: bots stop, the worker gets `jobs.shutdown_grace_s` to finish a render
  (an unfinished one is picked up again by the next worker), then Redis stops last;
- SIGKILL of this process, which no handler sees: every child asked the kernel for a signal
  when its parent dies (`prctl(PR_SET_PDEATHSIG)`), and the worker's render processes did the
  same towards the worker.
Children run in their own sessions so a terminal's Ctrl-C reaches only this process, which
then stops them in order.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import signal
import threading
from pathlib import Path

from avatarbot.tasks.connection import embedded_url_file
from avatarbot.tasks.redis_server import (
    RedisServer,
    die_with_parent,
    start_redis_server,
)

log = logging.getLogger(__name__)

BOT_STOP_TIMEOUT_S = 10.0
SUPERVISE_INTERVAL_S = 1.0
# Each process serves its own /metrics: `[metrics] port` is the worker's, the bots take the next.
METRICS_PORT_OFFSET = {"worker": 0, "telegram": 1, "discord": 2}


def run_all(settings, with_worker: bool) -> int:
    lock = _lock_data_dir(settings)
    if lock is None:
        log.error("another `avatarbot run` is already using %s; stop it first", settings.data_dir)
        return 1
    try:
        return _run_locked(settings, with_worker)
    finally:
        lock.close()


def _lock_data_dir(settings):
    """An exclusive lock on <data_dir>/run/lock: two embedded Redis servers must never share one
    append-only file. The kernel drops the lock when this process ends, however it ends."""
    path = Path(settings.data_dir) / "run" / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")  # noqa: SIM115 - held for the life of the run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _run_locked(settings, with_worker: bool) -> int:
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum, _frame) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    redis_server: RedisServer | None = None
    children: list[tuple[str, multiprocessing.Process]] = []
    exit_code = 0
    try:
        if not settings.redis.url:
            redis_server = start_redis_server(Path(settings.data_dir) / "redis")
            settings = settings.model_copy(
                update={"redis": settings.redis.model_copy(update={"url": redis_server.url})}
            )
            _write_url_file(settings, redis_server.url)
        children = _start_children(settings, with_worker)
        if not children:
            log.warning("nothing to run here besides Redis: no worker (--no-worker), no bot tokens, web page off")
        log.info("avatarbot running: %s; Ctrl-C to stop", ", ".join(["redis"] + [name for name, _ in children]))
        while not stop.wait(SUPERVISE_INTERVAL_S):
            dead = [(name, child) for name, child in children if not child.is_alive()]
            if dead:
                for name, child in dead:
                    log.error("%s stopped unexpectedly (exit code %s); stopping everything", name, child.exitcode)
                exit_code = 1
                break
            if redis_server is not None and not redis_server.alive():
                log.error("the embedded redis-server stopped unexpectedly; stopping everything")
                exit_code = 1
                break
        if received:
            log.info("received %s; stopping", signal.Signals(received[0]).name)
    finally:
        # Ignore further Ctrl-C while stopping: half-stopped children are what we must avoid.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        _stop_children(children, settings.jobs.shutdown_grace_s)
        if redis_server is not None:
            redis_server.stop()
            embedded_url_file(settings).unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return exit_code


def _write_url_file(settings, url: str) -> None:
    path = embedded_url_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(url + "\n", encoding="utf-8")


def _start_children(settings, with_worker: bool) -> list[tuple[str, multiprocessing.Process]]:
    # "spawn": a fresh interpreter, not a fork of this one with its threads and sockets.
    context = multiprocessing.get_context("spawn")
    wanted = []
    if with_worker:
        wanted.append("worker")
    if settings.telegram.resolved_token():
        wanted.append("telegram")
    if settings.discord.resolved_token():
        wanted.append("discord")
    if settings.web.enabled:
        wanted.append("web")
    children = []
    for name in wanted:
        child_settings = _with_metrics_port(settings, name)
        child = context.Process(target=_child_main, args=(name, child_settings, os.getpid()), name=f"avatarbot-{name}")
        child.start()
        log.info("started %s (pid %d)", name, child.pid)
        children.append((name, child))
    return children


def _with_metrics_port(settings, name: str):
    if settings.metrics.port is None or name not in METRICS_PORT_OFFSET:  # the web page serves none
        return settings
    port = settings.metrics.port + METRICS_PORT_OFFSET[name]
    return settings.model_copy(update={"metrics": settings.metrics.model_copy(update={"port": port})})


def _child_main(name: str, settings, parent_pid: int) -> None:
    """Entry point of each child process."""
    # The worker gets SIGKILL, not SIGTERM: with its parent gone nobody waits for a warm
    # shutdown, and the job's lease lets the next worker take the render over.
    die_with_parent(signal.SIGKILL if name == "worker" else signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    os.setsid()
    logging.basicConfig(
        level=settings.log_level.upper(), format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s"
    )
    if name == "worker":
        from avatarbot.tasks.worker import run_worker

        raise SystemExit(run_worker(settings, concurrency=1, queues="gpu"))
    if name == "telegram":
        from avatarbot.bots.telegram import run_telegram

        raise SystemExit(run_telegram(settings))
    if name == "discord":
        from avatarbot.bots.discord import run_discord

        raise SystemExit(run_discord(settings))
    if name == "web":
        from avatarbot.web import run_web

        raise SystemExit(run_web(settings))
    raise AssertionError(name)


def _stop_children(children: list[tuple[str, multiprocessing.Process]], grace_s: float) -> None:
    """Bots first (they stop posting), the worker last (it may be finishing a render)."""
    for name, child in sorted(children, key=lambda item: item[0] == "worker"):
        timeout = grace_s if name == "worker" else BOT_STOP_TIMEOUT_S
        _stop_process_group(name, child, timeout)


def _stop_process_group(name: str, child: multiprocessing.Process, timeout_s: float) -> None:
    if child.pid is None:
        return
    if child.is_alive():
        _signal_group(child.pid, signal.SIGTERM)
        child.join(timeout_s)
    if child.is_alive():
        log.warning("%s did not stop within %.0f s; killing it", name, timeout_s)
    # Kill whatever is left of its process group (e.g. a render process mid-job).
    _signal_group(child.pid, signal.SIGKILL)
    child.join(5)


def _signal_group(pid: int, sig: int) -> None:
    """Signal the child's whole process group, or just the child if it has none of its own yet."""
    try:
        os.killpg(pid, sig)
        return
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
