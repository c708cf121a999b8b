"""Give jobs whose worker died a new task message.

A worker killed outright (SIGKILL, OOM killer, power loss) leaves its task message
unacknowledged in Redis, and Redis hands it out again only after `visibility_timeout` (hours, on
purpose: see app.py). The job's lease, though, expires within `lease_s`. Every worker looks for
such orphans when it starts and then every few lease periods: an orphan goes back to `queued`
(at its original place in line) with a fresh task message, so it continues within about a
minute instead of hours. When the old message finally returns, it finds the job taken or
finished and does nothing.
"""

from __future__ import annotations

import logging
import threading

from avatarbot.tasks import keys
from avatarbot.tasks.jobs import ENCODING, RUNNING, JobStore

log = logging.getLogger(__name__)

SCAN_EVERY_LEASES = 3  # how often workers look for orphans, in lease periods


def orphaned_jobs(store: JobStore) -> list[str]:
    """Running or encoding jobs whose lease has expired, across every platform."""
    orphans = []
    for pending_key in store.redis.scan_iter(match=keys.pending("*", store.prefix), count=200):
        platform = pending_key.rsplit(":", 1)[1]
        for job in store.pending(platform):
            if job.state in (RUNNING, ENCODING) and store.lease_holder(job.id) is None:
                orphans.append(job.id)
    return orphans


def requeue_orphans(settings, app=None) -> int:
    from avatarbot.tasks.app import GPU_QUEUE, RENDER_TASK, create_app

    store = JobStore.from_settings(settings)
    try:
        requeued = 0
        for job_id in orphaned_jobs(store):
            if not store.requeue_orphan(job_id):  # claimed or ended meanwhile
                continue
            log.info("job %s lost its worker; queued again", job_id)
            app = app or create_app(settings)
            app.send_task(RENDER_TASK, args=[job_id], queue=GPU_QUEUE, task_id=job_id)
            requeued += 1
        return requeued
    finally:
        store.redis.close()


def start_orphan_watch(settings, app, stop: threading.Event) -> threading.Thread:
    """Look for orphans now and every SCAN_EVERY_LEASES lease periods until `stop` is set."""

    def watch() -> None:
        while True:
            try:
                count = requeue_orphans(settings, app)
                if count:
                    log.info("re-queued %d job(s) whose worker died", count)
            except Exception:  # Redis away for a moment: try again next round
                log.warning("could not look for orphaned jobs", exc_info=True)
            if stop.wait(SCAN_EVERY_LEASES * settings.jobs.lease_s):
                return

    thread = threading.Thread(target=watch, name="orphan-watch", daemon=True)
    thread.start()
    return thread
