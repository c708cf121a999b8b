"""`avatarbot run` (single-machine mode) as a real process tree: embedded redis-server, a prefork
worker, and nothing left behind however it stops (SIGINT, SIGTERM, even SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import voiced_wav, wait_for

pytestmark = [pytest.mark.timeout(240), pytest.mark.drill]

READY_TIMEOUT_S = 90


def _clean_env(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARBOT_")}
    env.update(AVATARBOT_DATA_DIR=str(data_dir), AVATARBOT_RENDER__QUALITY="fast", HF_HUB_OFFLINE="1")
    return env


def _start_run(data_dir: Path) -> subprocess.Popen:
    with open(data_dir / "run.log", "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "avatarbot", "run"], env=_clean_env(data_dir), stdout=log, stderr=subprocess.STDOUT
        )


def _wait_ready(run: subprocess.Popen, data_dir: Path) -> list[psutil.Process]:
    """Wait until Redis answers and the worker replies to a ping; return the whole process tree."""
    from avatarbot.settings import Settings
    from avatarbot.tasks.app import create_app

    url_file = data_dir / "run" / "redis.url"
    wait_for(lambda: url_file.is_file() or run.poll() is not None, READY_TIMEOUT_S, 0.1)
    assert run.poll() is None, (data_dir / "run.log").read_text()
    app = create_app(Settings(data_dir=data_dir, redis={"url": url_file.read_text().strip()}))
    try:
        wait_for(lambda: app.control.ping(timeout=0.5) or run.poll() is not None, READY_TIMEOUT_S, 0.2)
    finally:
        app.close()
    assert run.poll() is None, (data_dir / "run.log").read_text()
    tree = psutil.Process(run.pid).children(recursive=True)
    names = " ".join(p.name() for p in tree)
    assert "redis-server" in names
    assert sum(1 for p in tree if p.name().startswith("python")) >= 3  # worker, its render process, tracker
    return tree


def _assert_all_gone(processes: list[psutil.Process], data_dir: Path) -> None:
    def gone(process: psutil.Process) -> bool:
        try:
            return process.status() == psutil.STATUS_ZOMBIE or not process.is_running()
        except psutil.NoSuchProcess:
            return True

    wait_for(lambda: all(gone(p) for p in processes), 30, 0.1)
    # And no redis-server anywhere still serves this data directory.
    for process in psutil.process_iter(["name", "cwd"]):
        if process.info["name"] == "redis-server":
            assert process.info["cwd"] != str(data_dir / "redis"), "embedded redis-server left behind"


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_run_stops_everything_on_signal(tmp_path, stop_signal, photo_bytes):
    run = _start_run(tmp_path)
    try:
        tree = _wait_ready(run, tmp_path)
        if stop_signal == signal.SIGINT:
            # While it runs, `animate --queue` finds the embedded Redis by itself and gets a clip.
            (tmp_path / "me.jpg").write_bytes(photo_bytes)
            (tmp_path / "me.wav").write_bytes(voiced_wav())
            animate = subprocess.run(
                [sys.executable, "-m", "avatarbot", "animate", "--queue", "--photo", str(tmp_path / "me.jpg"),
                 "--voice", str(tmp_path / "me.wav"), "-o", str(tmp_path / "out.mp4")],
                env=_clean_env(tmp_path), capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert animate.returncode == 0, animate.stderr
            assert (tmp_path / "out.mp4").stat().st_size > 1000
            assert "Queued" in animate.stderr  # progress reached the terminal (the render may be too quick for more)
        run.send_signal(stop_signal)
        assert run.wait(60) == 0
        _assert_all_gone(tree, tmp_path)
        assert not (tmp_path / "run" / "redis.url").exists()
    finally:
        if run.poll() is None:
            run.kill()


def test_a_second_run_on_the_same_data_dir_is_refused(tmp_path):
    run = _start_run(tmp_path)
    try:
        _wait_ready(run, tmp_path)
        second = subprocess.run(
            [sys.executable, "-m", "avatarbot", "run"], env=_clean_env(tmp_path), capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 1
        assert "already using" in second.stderr
        assert run.poll() is None  # the first one is unharmed
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(60)


def test_run_killed_outright_leaves_nothing_behind(tmp_path):
    run = _start_run(tmp_path)
    try:
        tree = _wait_ready(run, tmp_path)
        run.kill()  # SIGKILL: no handler runs; only PR_SET_PDEATHSIG can clean up
        run.wait(10)
        _assert_all_gone(tree, tmp_path)
    finally:
        if run.poll() is None:
            run.kill()


def test_animate_queue_without_any_redis_says_how_to_fix_it(tmp_path, photo_bytes):
    (tmp_path / "me.jpg").write_bytes(photo_bytes)
    result = subprocess.run(
        [sys.executable, "-m", "avatarbot", "animate", "--queue", "--photo", str(tmp_path / "me.jpg"),
         "--text", "hello", "-o", str(tmp_path / "out.mp4")],
        env=_clean_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "render queue isn't reachable" in result.stderr


def test_each_process_of_run_gets_its_own_metrics_port_and_the_page_none():
    from avatarbot.runner import _with_metrics_port
    from avatarbot.settings import Settings

    settings = Settings(metrics={"port": 9100}, web={"enabled": True})
    assert [_with_metrics_port(settings, name).metrics.port for name in ("worker", "telegram", "discord")] == [
        9100,
        9101,
        9102,
    ]
    assert _with_metrics_port(settings, "web") is settings  # the page serves no /metrics
