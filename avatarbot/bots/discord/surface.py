"""Discord as a surface of the flow (`avatarbot.service.traits`): bot-token channel messages for
status, clips and failures, and the answers to interactions and voice replies.

Everything here uses the bot token's channel endpoints, never the interaction token: a render
can outlive the 15-minute interaction token, and a restarted process has no interactions at
all. The message nonce (with `enforce_nonce`) makes a retried upload after a lost response return
the first message instead of posting a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp
import discord

from avatarbot import messages
from avatarbot.bots.discord.buttons import view_for
from avatarbot.bots.discord.limits import DEFAULT_UPLOAD_LIMIT_BYTES, MAX_NONCE_CHARS
from avatarbot.service import replies
from avatarbot.service.traits import Action, ErrorKind, Posted
from avatarbot.tasks.jobs import Job, ReplyTarget
from avatarbot.vocab import JobState, Platform

if TYPE_CHECKING:
    from avatarbot.bots.discord.bot import AvatarBot

log = logging.getLogger(__name__)

# discord.py sets no timeout on a request (aiohttp's default is 5 minutes) and retries 5xx on its
# own. A post that hangs must give up well before its delivery claim expires: otherwise another
# bot process could claim the job and post it while this upload is still going.
POST_DEADLINE_SHARE_OF_CLAIM = 0.5


def clip_nonce(job_id: str) -> str:
    """A stable nonce per job: the same upload retried is recognised by Discord."""
    nonce = "av" + job_id
    if len(nonce) > MAX_NONCE_CHARS:
        nonce = "av" + hashlib.sha256(job_id.encode()).hexdigest()[: MAX_NONCE_CHARS - 2]
    return nonce


def mention(job: Job) -> str:
    return f"<@{job.requester.user_id}>"


def _framed(job: Job, text: str) -> str:
    """ "Clip for @user: …", in the job's language."""
    return messages.discord_status(mention(job), text, replies.language(job))


def _reference(target: ReplyTarget, fallback: str | None) -> discord.MessageReference | None:
    """The original message (voice reply, photo), else the status message of a slash command."""
    message_id = target.message_id or fallback
    if not message_id:
        return None
    # fail_if_not_exists=False: if the user deleted their message, post anyway.
    return discord.MessageReference(
        message_id=int(message_id), channel_id=int(target.chat_id), fail_if_not_exists=False
    )


class DiscordSurface:
    platform = Platform.DISCORD

    def __init__(self, bot: AvatarBot):
        self.bot = bot
        self.post_timeout_s = bot.settings.jobs.delivery_claim_s * POST_DEADLINE_SHARE_OF_CLAIM

    def edit_interval_s(self, target: ReplyTarget) -> float:
        return self.bot.settings.discord.status_edit_interval_s

    def upload_limit(self, target: ReplyTarget) -> int:
        """The server's limit as Discord reported it with the request, else the guild's, else 10 MiB."""
        extra = target.extra or {}
        if extra.get("upload_limit"):
            return int(extra["upload_limit"])
        guild = self.bot.get_guild(int(extra["guild_id"])) if extra.get("guild_id") else None
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT_BYTES

    def message_link(self, target: ReplyTarget, message_id: str) -> str | None:
        """Discord's jump URL (`Message.jump_url`'s form); "@me" for a direct message."""
        guild = (target.extra or {}).get("guild_id") or "@me"
        return f"https://discord.com/channels/{guild}/{target.chat_id}/{message_id}"

    def error_kind(self, error: BaseException) -> ErrorKind | None:
        if isinstance(error, discord.Forbidden | discord.NotFound):
            return ErrorKind.PERMANENT  # the channel is gone or we may not post there
        if isinstance(error, discord.HTTPException) and error.status == 413:
            return ErrorKind.PERMANENT  # too big for the channel after all
        if isinstance(error, discord.HTTPException | aiohttp.ClientError | TimeoutError):
            # Discord may have taken a post without answering in time: the retry carries the same
            # nonce, so it can't make a second message.
            return ErrorKind.TRANSIENT
        return None

    def _channel(self, target: ReplyTarget):
        return self.bot.get_partial_messageable(int(target.chat_id))

    def _ping(self, job: Job) -> discord.AllowedMentions:
        return discord.AllowedMentions(users=[discord.Object(int(job.requester.user_id))])

    async def post_status(self, job: Job, text: str, actions: Sequence[Action]) -> str:
        """A normal channel message (bot token), so it can be edited long after any interaction."""
        message = await self._channel(job.reply_target).send(
            _framed(job, text),
            view=view_for(actions, job.id, replies.language(job)),
            reference=_reference(job.reply_target, None),
        )
        return str(message.id)

    async def edit_status(
        self, job: Job, message_id: str, text: str, actions: Sequence[Action], *, urgent: bool = False
    ) -> None:
        await self._edit(job.reply_target, message_id, _framed(job, text), actions, job)

    async def _edit(self, target: ReplyTarget, message_id: str, content: str, actions, job: Job) -> None:
        message = self._channel(target).get_partial_message(int(message_id))
        view = view_for(actions, job.id, replies.language(job))
        await asyncio.wait_for(message.edit(content=content, view=view), self.post_timeout_s)

    async def close_status(self, job: Job, text: str, outcome: Posted) -> None:
        """The status message stays, saying how it ended, without buttons."""
        if job.status_message_id and outcome.message_id != job.status_message_id:
            await self._end_status(job, text)

    async def _end_status(self, job: Job, text: str) -> None:
        await self._edit(job.reply_target, job.status_message_id, _framed(job, text), (), job)

    async def post_clip(self, target: ReplyTarget, job: Job, clip, caption: str, actions: Sequence[Action]) -> Posted:
        notes = [caption] if caption else []
        post = self._channel(target).send(
            messages.discord_clip_caption(mention(job), notes, replies.language(job)),
            file=discord.File(clip.path, filename=f"avatar-{job.id}.mp4"),
            reference=_reference(target, job.status_message_id),
            view=view_for(actions, job.id, replies.language(job)),
            nonce=clip_nonce(job.id) if target == job.reply_target else None,
            allowed_mentions=self._ping(job),
        )
        message = await asyncio.wait_for(post, self.post_timeout_s)
        return Posted(str(message.id), {"channel_id": str(message.channel.id), "size_bytes": clip.size_bytes})

    async def post_failure(self, job: Job, text: str) -> Posted:
        if job.state == JobState.CANCELLED and job.status_message_id:
            # The status message says so; no extra post.
            await self._end_status(job, text)
            return Posted(job.status_message_id, {"channel_id": job.reply_target.chat_id})
        post = self._channel(job.reply_target).send(
            _framed(job, text),
            reference=_reference(job.reply_target, job.status_message_id),
            nonce=clip_nonce(job.id),
            allowed_mentions=self._ping(job),
        )
        message = await asyncio.wait_for(post, self.post_timeout_s)
        return Posted(str(message.id), {"channel_id": str(message.channel.id), "error": text})
