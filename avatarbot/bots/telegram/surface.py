"""Telegram as a surface of the flow (`avatarbot.service.traits`): Bot API calls for status
messages, clips and failures, and the answer to one request.

Texts come finished from the flow; this module only knows how Telegram shows them: replies in the
request's forum topic, inline keyboards, sendVideo with a document fallback, the status message
deleted once the clip takes its place, `upload_video` while a job renders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from telegram import Bot, InputFile, Message, ReplyParameters
from telegram.constants import ChatAction, FloodLimit, MessageLimit
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from avatarbot import messages
from avatarbot.service import replies
from avatarbot.service.traits import Action, ErrorKind, Posted
from avatarbot.settings import Settings
from avatarbot.tasks.jobs import Job, ReplyTarget
from avatarbot.vocab import Platform

from . import buttons, files, ratelimit
from .retries import call_with_retries

log = logging.getLogger(__name__)

# The Bot API has no idempotency key: an upload it stored but answered after our read timeout
# is posted again by the retry. PTB's defaults (5 s read, 20 s media write) are shorter than the
# Bot API can take to process a large video, so uploads wait much longer for their answer; only
# an answer lost outright (or later than this) can still duplicate a clip.
UPLOAD_TIMEOUTS = {"read_timeout": 120.0, "write_timeout": 120.0}
# Seconds between edits in one chat: 1 msg/s in a private chat, 20 msg/min in a group.
PRIVATE_EDIT_INTERVAL_S = 1.0 / FloodLimit.MESSAGES_PER_SECOND_PER_CHAT
GROUP_EDIT_INTERVAL_S = 60.0 / FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP
# Supergroup and channel ids are -100 followed by the id that message links use.
SUPERGROUP_ID_PREFIX = "-100"
# A chat action shows for at most 5 s; repeat it a little sooner.
CHAT_ACTION_REPEAT_S = 4.0


def int_or_none(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _reply_parameters(message_id: str | None) -> ReplyParameters | None:
    return ReplyParameters(int(message_id), allow_sending_without_reply=True) if message_id else None


class TelegramSurface:
    platform = Platform.TELEGRAM

    def __init__(self, bot: Bot, settings: Settings):
        self.bot = bot
        self.settings = settings
        self._last_action: dict[tuple[int, int | None], float] = {}

    def edit_interval_s(self, target: ReplyTarget) -> float:
        return PRIVATE_EDIT_INTERVAL_S if int(target.chat_id) > 0 else GROUP_EDIT_INTERVAL_S

    def upload_limit(self, target: ReplyTarget) -> int:
        return files.upload_limit(self.settings)

    def message_link(self, target: ReplyTarget, message_id: str) -> str | None:
        """t.me/c/<chat>/<message> opens a message of a supergroup or channel for its members
        (the chat id without its -100 prefix); private chats and basic groups have no links."""
        chat = str(target.chat_id)
        if not chat.startswith(SUPERGROUP_ID_PREFIX):
            return None
        thread = f"?thread={target.thread_id}" if target.thread_id else ""
        return f"https://t.me/c/{chat[len(SUPERGROUP_ID_PREFIX) :]}/{message_id}{thread}"

    def error_kind(self, error: BaseException) -> ErrorKind | None:
        if isinstance(error, BadRequest | Forbidden):
            return ErrorKind.PERMANENT  # the chat is gone, the bot was removed, the post is refused
        if isinstance(error, NetworkError | RetryAfter | TimeoutError):
            return ErrorKind.TRANSIENT
        return None

    async def post_status(self, job: Job, text: str, actions: Sequence[Action]) -> str:
        sent = await self._reply(
            job.reply_target, text, reply_markup=buttons.keyboard(actions, job.id, replies.language(job))
        )
        return str(sent.message_id)

    async def _reply(self, target: ReplyTarget, text: str, **kwargs) -> Message:
        """A message answering the request, in its forum topic."""
        return await call_with_retries(
            self.bot.send_message,
            chat_id=int(target.chat_id),
            text=text,
            message_thread_id=int_or_none(target.thread_id),
            reply_parameters=_reply_parameters(target.message_id),
            **kwargs,
        )

    async def edit_status(
        self, job: Job, message_id: str, text: str, actions: Sequence[Action], *, urgent: bool = False
    ) -> None:
        target = job.reply_target
        if not urgent:
            await self.chat_action(int(target.chat_id), int_or_none(target.thread_id))
        # rate_limit_args only where asked: a plain Bot (not the Application's ExtBot) has none.
        priority = {"rate_limit_args": ratelimit.ANSWER} if urgent else {}
        try:
            await self.bot.edit_message_text(
                text, chat_id=int(target.chat_id), message_id=int(message_id),
                reply_markup=buttons.keyboard(actions, job.id, replies.language(job)), **priority,
            )  # fmt: skip
        except BadRequest as error:
            # "message is not modified" or the message was deleted: nothing to retry.
            log.debug("status edit in %s skipped: %s", target.chat_id, error)

    async def close_status(self, job: Job, text: str, outcome: Posted) -> None:
        """The clip (or a failure reply) replaces the status message."""
        if job.status_message_id and outcome.message_id != job.status_message_id:
            await self.bot.delete_message(int(job.reply_target.chat_id), int(job.status_message_id))

    async def post_clip(self, target: ReplyTarget, job: Job, clip, caption: str, actions: Sequence[Action]) -> Posted:
        """sendVideo replying to the request in its topic; a document if Telegram refuses it."""
        common = {
            "chat_id": int(target.chat_id),
            "message_thread_id": int_or_none(target.thread_id),
            "reply_parameters": _reply_parameters(target.message_id),
            "reply_markup": buttons.keyboard(actions, job.id, replies.language(job)),
            "caption": caption[: MessageLimit.CAPTION_LENGTH] or None,
        }
        await self.chat_action(int(target.chat_id), int_or_none(target.thread_id))
        with open(clip.path, "rb") as handle:  # noqa: ASYNC230 (opening a local temp file is instant)
            try:
                sent = await call_with_retries(
                    self.bot.send_video,
                    video=InputFile(handle, filename="clip.mp4", read_file_handle=False),
                    width=clip.width,
                    height=clip.height,
                    duration=max(1, round(clip.duration)),
                    thumbnail=InputFile(clip.thumbnail, filename="thumbnail.jpg") if clip.thumbnail else None,
                    supports_streaming=True,
                    **UPLOAD_TIMEOUTS,
                    **common,
                )
                kind = "video"
            except BadRequest as error:
                # Telegram refused it as a video (e.g. an odd encoding): a plain file still works.
                log.warning("sendVideo for job %s refused (%s); sending a document", job.id, error)
                handle.seek(0)
                sent = await call_with_retries(
                    self.bot.send_document,
                    document=InputFile(handle, filename="clip.mp4", read_file_handle=False),
                    **UPLOAD_TIMEOUTS,
                    **common,
                )
                kind = "document"
        return Posted(str(sent.message_id), {"chat_id": target.chat_id, "as": kind})

    async def post_failure(self, job: Job, text: str) -> Posted:
        """The reason replaces the status message, or answers the request."""
        target = job.reply_target
        if job.status_message_id:
            try:
                await call_with_retries(
                    self.bot.edit_message_text,
                    text=text,
                    chat_id=int(target.chat_id),
                    message_id=int(job.status_message_id),
                )
                return Posted(job.status_message_id, {"chat_id": target.chat_id, "as": "edit"})
            except BadRequest as error:
                log.info("status message of job %s not editable (%s); replying instead", job.id, error)
        sent = await self._reply(target, text)
        return Posted(str(sent.message_id), {"chat_id": target.chat_id, "as": "reply"})

    async def chat_action(self, chat_id: int, thread_id: int | None) -> None:
        """`upload_video` while rendering, repeated no more often than it lasts."""
        now = asyncio.get_running_loop().time()
        key = (chat_id, thread_id)
        if now - self._last_action.get(key, -CHAT_ACTION_REPEAT_S) < CHAT_ACTION_REPEAT_S:
            return
        self._last_action[key] = now
        try:
            await self.bot.send_chat_action(chat_id, ChatAction.UPLOAD_VIDEO, message_thread_id=thread_id)
        except TelegramError as error:
            log.info("chat action in %s failed: %s", chat_id, error)


class TelegramAnswer:
    """The answer to one request message: "Checking…" at once, edited into the outcome or into
    the job's status message."""

    def __init__(self, message: Message):
        self.message = message
        self.status_message_id: str | None = None
        self.language = messages.ENGLISH  # the flow sets the request's language before acknowledge
        self._ack: Message | None = None

    async def acknowledge(self) -> None:
        self._ack = await send_reply(self.message, messages.text("telegram_checking", self.language))
        self.status_message_id = str(self._ack.message_id)

    async def say(self, text: str) -> None:
        try:
            if self._ack is None:
                await send_reply(self.message, text)
                return
            await call_with_retries(
                self._ack.get_bot().edit_message_text,
                chat_id=self._ack.chat_id,
                message_id=self._ack.message_id,
                text=text[: MessageLimit.MAX_TEXT_LENGTH],
                rate_limit_args=ratelimit.ANSWER,
            )  # the request's outcome, not progress
        except TelegramError as error:
            log.warning("could not answer in chat %s: %s", self.message.chat_id, error)

    async def started(self, text: str) -> None:
        """The acknowledgement has become the status message: nothing more to say."""


async def send_reply(message: Message, text: str, **kwargs) -> Message:
    """A reply in the same chat and topic (raises when Telegram refuses it)."""
    return await call_with_retries(
        message.get_bot().send_message,
        chat_id=message.chat_id,
        text=text[: MessageLimit.MAX_TEXT_LENGTH],
        message_thread_id=message.message_thread_id if message.is_topic_message else None,
        reply_parameters=ReplyParameters(message.message_id, allow_sending_without_reply=True),
        **kwargs,
    )
