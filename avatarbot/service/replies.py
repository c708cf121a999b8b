"""What the flow says about a job, decided in one place (a reply's language is threaded through
here when replies are localised): the status line, the outcome, the clip's caption."""

from __future__ import annotations

from avatarbot import messages
from avatarbot.service.chat_config import ChatConfig
from avatarbot.tasks.jobs import Job
from avatarbot.vocab import JobState, Stage


def status(job: Job) -> str:
    """ "Queued — 3rd in line", or the progress bar with stage and ETA."""
    if job.state == JobState.QUEUED:
        return messages.queued(job.queue_position)
    stage = job.stage or (Stage.ENCODING if job.state == JobState.ENCODING else Stage.RENDERING)
    return messages.progress(stage, job.step, job.total, job.eta_s)


def outcome(job: Job) -> str:
    """Why a job ended without a clip."""
    if job.user_message:
        return job.user_message
    return messages.CANCELLED if job.state == JobState.CANCELLED else messages.RENDER_FAILED


def final_status(job: Job) -> str:
    """What the status message says once the job is over."""
    error = (job.delivery or {}).get("error")
    if error:
        return error
    if job.state in (JobState.DONE, JobState.DELIVERED):
        return messages.DONE
    return outcome(job)


def caption(job: Job, config: ChatConfig) -> str:
    """The spoken text (where the chat wants it) and notes such as "no face found"."""
    lines = [job.options.text] if config.clip_captions and job.options.text else []
    return "\n".join([*lines, *job.notes])
