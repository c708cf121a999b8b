"""What the flow says about a job, decided in one place, in the job's language (fixed when it was
asked: `job.requester.language`): the status line, the outcome, the clip's caption."""

from __future__ import annotations

from avatarbot import messages
from avatarbot.service.chat_config import ChatConfig
from avatarbot.tasks.jobs import Job, Requester
from avatarbot.vocab import JobState, Stage


def language(job: Job) -> str:
    """The language every text about this job is said in."""
    return messages.resolve(job.requester.language)


def for_request(requester: Requester, config: ChatConfig) -> str:
    """The language to answer a request in: the chat's override, else the person's own."""
    return messages.pick(config.language, requester.language)


def status(job: Job) -> str:
    """ "Queued — 3rd in line", or the progress bar with stage and ETA."""
    lang = language(job)
    if job.state == JobState.QUEUED:
        return messages.queued(job.queue_position, lang)
    stage = job.stage or (Stage.ENCODING if job.state == JobState.ENCODING else Stage.RENDERING)
    return messages.progress(stage, job.step, job.total, job.eta_s, lang=lang)


def outcome(job: Job) -> str:
    """Why a job ended without a clip (from its error code and numbers, in its language)."""
    lang = language(job)
    if job.error_code or job.user_message:
        return messages.from_record(job.error_code, job.error_params, lang, job.user_message)
    return messages.text("cancelled" if job.state == JobState.CANCELLED else "render_failed", lang)


def final_status(job: Job) -> str:
    """What the status message says once the job is over."""
    delivery = job.delivery or {}
    if delivery.get("error"):
        return messages.from_record(delivery.get("error_code"), delivery.get("error_params"), language(job),
                                    delivery["error"])  # fmt: skip
    if job.state in (JobState.DONE, JobState.DELIVERED):
        return messages.text("done", language(job))
    return outcome(job)


def caption(job: Job, config: ChatConfig) -> str:
    """The spoken text (where the chat wants it) and notes such as "no face found"."""
    lines = [job.options.text] if config.clip_captions and job.options.text else []
    return "\n".join([*lines, *(messages.localize(note, language(job)) for note in job.notes)])


def say(sentence: str, job: Job) -> str:
    """A sentence built by `messages` (an English `Text`) in the job's language."""
    return messages.localize(sentence, language(job))
