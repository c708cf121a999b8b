"""The Celery app, configured for renders that take minutes to hours on one GPU each.

Every choice below answers a failure seen with long tasks on Redis (DESIGN §5):
- `task_acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only after the
  render ends; a worker killed mid-render (OOM, SIGKILL) puts it back instead of losing it.
- `worker_prefetch_multiplier = 1`: a worker holds one render at a time, so a queued job is not
  stuck behind a busy GPU while an idle one waits.
- `visibility_timeout` above the longest render: Redis re-delivers an unacknowledged message
  after this long, and would start a second copy of a still-running render (celery #5935).
  The job lease (jobs.py) makes that second copy harmless anyway.
- renders go to the `gpu` queue, so bot-side machines can run other queues without a GPU.
- events on, for Flower: `celery -A avatarbot.tasks.celery_app flower`.

The bots never import the task code: they send the task by name with only the job id.
"""

from __future__ import annotations

from celery import Celery

from avatarbot.tasks.connection import resolve_redis_url

RENDER_TASK = "avatarbot.render"
GPU_QUEUE = "gpu"
HARD_LIMIT_GRACE_S = 60  # after the soft limit, time to record the failure before SIGKILL


def create_app(settings) -> Celery:
    url = resolve_redis_url(settings)
    jobs = settings.jobs
    app = Celery("avatarbot", broker=url, backend=url, set_as_current=False)
    transport = {"visibility_timeout": jobs.visibility_timeout_s}
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        result_expires=jobs.result_ttl_s,
        task_routes={RENDER_TASK: {"queue": GPU_QUEUE}},
        task_default_queue=GPU_QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        # Keep rendering through a short Redis outage; the lease stops a duplicate run.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_soft_time_limit=jobs.render_time_limit_s,
        task_time_limit=jobs.render_time_limit_s + HARD_LIMIT_GRACE_S,
    )
    app.avatarbot_settings = settings

    from avatarbot.tasks.render_job import register_render_task

    register_render_task(app)
    return app
