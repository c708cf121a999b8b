"""Fault drill: a real `avatarbot worker` (prefork) loses its render process to SIGKILL mid-render.

Celery puts the message back (`task_reject_on_worker_lost`), the new delivery finds the dead
process's lease still held, checks back after one lease period, takes the job over and finishes
it. Runs in Redis database 1 so the session's in-process worker can't take the job instead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import psutil
import pytest
from conftest import voiced_wav, wait_for, wait_for_job, with_overrides

from avatarbot.service.flow import RenderRequest, RequestFlow
from avatarbot.tasks import keys

pytestmark = [pytest.mark.timeout(240), pytest.mark.drill]


@pytest.fixture
def drill_settings(settings, redis_server):
    return with_overrides(settings, redis={"url": redis_server.url.rsplit("/", 1)[0] + "/1"})


@pytest.fixture
def worker_process(drill_settings, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARBOT_")}
    env.update(
        AVATARBOT_DATA_DIR=str(tmp_path),
        AVATARBOT_REDIS__URL=drill_settings.redis.url,
        AVATARBOT_JOBS__LEASE_S="2",
        AVATARBOT_JOBS__RENDER_TIME_LIMIT_S="120",
        AVATARBOT_JOBS__VISIBILITY_TIMEOUT_S="180",
        HF_HUB_OFFLINE="1",
    )
    with open(tmp_path / "worker.log", "wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "avatarbot", "worker", "--concurrency", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    yield process
    process.send_signal(signal.SIGQUIT)  # cold shutdown
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in psutil.Process().children(recursive=True):
        assert child.pid != process.pid


async def test_render_process_killed_mid_render_is_taken_over(
    drill_settings, worker_process, requester, reply_to, photo_bytes
):
    flow = RequestFlow.from_settings(drill_settings)
    try:
        job = await flow.submit(
            requester, reply_to, RenderRequest(photo=photo_bytes, audio=voiced_wav(seconds=12.0), quality="high")
        )

        def rendering_pid():
            current = flow.store.get(job.id)
            if current is None or current.stage != "rendering" or current.step < 1:
                return None
            return int(flow.store.redis.hget(keys.job(job.id), "worker").split(":")[1])

        victim = await asyncio.to_thread(wait_for, rendering_pid, 120, 0.02)
        assert victim != worker_process.pid  # a pool process, not the worker's main process
        os.kill(victim, signal.SIGKILL)

        done = await asyncio.to_thread(wait_for_job, flow.store, job.id, {"done", "failed"}, 150)
        assert done.state == "done", (done.error_code, done.user_message)
        assert done.attempts == 2
        assert [state for state, _ in flow.store.history(job.id)][-2:] == ["encoding", "done"]
        assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE
        assert worker_process.poll() is None  # the worker itself lived on
    finally:
        await flow.close()
