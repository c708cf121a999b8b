"""The contract between the request flow and a chat surface (Telegram, Discord, the web page).

The flow (`avatarbot.service`) owns a job's whole life: intake, repeats, status, delivery,
buttons and every sentence said. A surface only translates: platform events into calls of its
`Lifecycle` (`lifecycle.handle_request(answer, requester, reply_to, photo, sound, text, ...)`,
`lifecycle.press(Press(...))`), and the flow's requests back into platform calls through the two
small Protocols below. A new surface implements them and nothing else of the job's life:

    lifecycle = Lifecycle(RequestFlow.from_settings(settings), MySurface(...))
    lifecycle.start()   # the watch loop: status edits, delivery, restarts
    ...
    await lifecycle.stop()

- `Surface`: one object per running surface, used by the flow's watcher for every job of that
  platform (status edits, the clip, a failure, the upload limit, which errors are permanent).
- `Answer`: one object per incoming request, used by the flow's intake to answer *that*
  request (acknowledge at once, say a refusal, turn the answer into the job's status message).
- `Source` (per file of a request) and `Press` (per button press) are what the surface hands in.

Rules every implementation keeps (the flow relies on them):
- Methods raise on failure; `Surface.error_kind` says whether an error can never succeed
  (PERMANENT: the chat is gone, the bot was removed, the file is too big for the platform) or may
  succeed on a retry (TRANSIENT: 5xx, timeouts, network). A surface may retry a call itself
  (PTB and discord.py do); the flow offers a transiently failed delivery again a few times
  (every few seconds up to `jobs.delivery_claim_s`) and then gives up, once. A permanent failure
  is never retried: the requester is told once, where the platform still lets us speak.
- Texts arrive finished (`avatarbot.messages`), in the job's language (`job.requester.language`,
  which a surface uses for its own words: buttons, the frame); a surface may frame them (Discord prefixes
  "Clip for @user:"), never rewrite them. Buttons arrive as `Action`s; the surface draws them and
  puts the job id in their data, and sends presses back through `Lifecycle.press` with the id of
  the message that carried the button (the flow binds the press to that message, not to the data).
- Message ids and chat ids are strings, whatever the platform uses. A job's `reply_target.extra`
  is the surface's own (JSON-serialisable) notes about where to answer.
- Nothing here blocks the event loop; every method is a coroutine except the pure ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from avatarbot.service.clips import ClipFile
    from avatarbot.tasks.jobs import Job, ReplyTarget, Requester
    from avatarbot.vocab import Platform


class Action(StrEnum):
    """A button under a status message (CANCEL) or a clip (AGAIN, DELETE)."""

    AGAIN = "again"
    DELETE = "delete"
    CANCEL = "cancel"


STATUS_ACTIONS: tuple[Action, ...] = (Action.CANCEL,)
CLIP_ACTIONS: tuple[Action, ...] = (Action.AGAIN, Action.DELETE)


class ErrorKind(StrEnum):
    PERMANENT = "permanent"  # the same call will fail the same way: answer once, stop
    TRANSIENT = "transient"  # may work later: retry with backoff, then give up once


@dataclass(frozen=True)
class Posted:
    """A message the surface posted: its id, and what the job record should remember about it
    (stored as the job's delivery record; JSON-serialisable)."""

    message_id: str
    record: dict = field(default_factory=dict)


class Surface(Protocol):
    """What the flow's watcher needs from a platform, for any job of that platform."""

    platform: Platform

    def edit_interval_s(self, target: ReplyTarget) -> float:
        """The least time between two status edits in this chat (flood limits). The flow's
        throttle keeps to it per chat and always ends on the newest text."""

    async def post_status(self, job: Job, text: str, actions: Sequence[Action]) -> str:
        """Post a new status message replying to `job.reply_target`; return its message id."""

    async def edit_status(
        self, job: Job, message_id: str, text: str, actions: Sequence[Action], *, urgent: bool = False
    ) -> None:
        """Make the status message say `text` with these buttons. `urgent`: this edit answers the
        requester (their request was taken), so it goes ahead of routine progress edits."""

    async def close_status(self, job: Job, text: str, outcome: Posted) -> None:
        """The job's outcome was posted (as `outcome`: the clip, or the failure) and recorded: its
        status message ends on `text` with no buttons, or is removed where the platform shows the
        outcome in its place. Nothing to do when `outcome` *is* the status message."""

    async def post_clip(
        self, target: ReplyTarget, job: Job, clip: ClipFile, caption: str, actions: Sequence[Action]
    ) -> Posted:
        """Upload `clip.path` (width, height, duration, thumbnail in `clip`) as a reply to
        `target`'s message, with `caption` and buttons for `job.id`. `clip.size_bytes` is within
        `upload_limit(target)`. Called again for the same job only after a TRANSIENT error: use
        an idempotency key (Discord's nonce) where the platform has one."""

    async def post_failure(self, job: Job, text: str) -> Posted:
        """Tell the requester their job ended without a clip (`text` says why), once: a reply,
        or the status message turned into the answer (then return that message)."""

    def message_link(self, target: ReplyTarget, message_id: str) -> str | None:
        """A link that opens this message of the chat, or None where the platform has none (a
        private chat): a repeated request is pointed at the status message already there."""

    def upload_limit(self, target: ReplyTarget) -> int:
        """The most bytes one clip may have in this chat; the flow re-encodes to fit."""

    def error_kind(self, error: BaseException) -> ErrorKind | None:
        """PERMANENT or TRANSIENT for a platform error; None for anything that is not one
        (the flow logs it as a bug and treats it as transient)."""


class Answer(Protocol):
    """A surface's handle on one incoming request (a command, a reply, a form submission)."""

    status_message_id: str | None
    """After `acknowledge`: the acknowledgement's message id when the platform lets it turn into
    the job's status message (the flow then edits it), else None (the flow posts one)."""

    language: str
    """Set by the flow before `acknowledge`: the language this request is answered in (a shipped
    `messages.LANGUAGES` tag; the chat's override or the person's own). `say` and `started` get
    texts already in it; a surface's own words (the acknowledgement) use it too."""

    async def acknowledge(self) -> None:
        """Answer at once ("Got it, checking…"), before anything is downloaded. Raises if the
        platform refuses to let us speak there: the flow then stops, nothing is fetched. An
        `AvatarbotError` raised here is said to the requester (e.g. "I can't post here")."""

    async def say(self, text: str) -> None:
        """The request's final answer when no new job came of it (a refusal, a repeat): replaces
        the acknowledgement where the platform can, else a reply. Never raises."""

    async def started(self, text: str) -> None:
        """A job was made and its status message is in the chat. A platform whose
        acknowledgement the chat can't see (Discord's ephemeral deferral) says `text` there;
        others do nothing. Never raises."""


@dataclass(frozen=True)
class Source:
    """One file of a request, before download: what the platform declared about it, and how to
    fetch it. The flow checks the declaration, then calls `fetch(max_bytes)` within its own
    overall deadline; `fetch` must stop past `max_bytes` (raise `FileTooBigError`) and raise
    `DownloadError` when the host fails."""

    fetch: Callable[[int], Awaitable[bytes]]
    declared_bytes: int | None = None
    media_type: str | None = None  # e.g. "image/jpeg", "audio/ogg"; None when unknown
    duration_s: float | None = None  # sound only, when the platform says
    name: str = ""  # for the operator's log only


@dataclass(frozen=True)
class Press:
    """A button press as the surface saw it. `job_id` comes from the button's data (anyone can
    forge that); `chat_id` and `message_id` are where the press came from (the platform vouches
    for those). `is_moderator` answers whether the presser may act on others' jobs in that chat.
    `before_acting`, if given, is awaited once the press is allowed and before the slow part
    (Again reads the inputs back and queues a render): Discord acknowledges the interaction there.
    `Lifecycle.press` answers with a `PressOutcome`: the text to show the presser, and whether the
    surface should delete the pressed message (Delete)."""

    action: Action
    job_id: str
    chat_id: str
    message_id: str | None
    presser: Requester
    is_moderator: Callable[[], Awaitable[bool]]
    before_acting: Callable[[], Awaitable[None]] | None = None
