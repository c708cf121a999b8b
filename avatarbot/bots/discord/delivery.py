"""Watching our jobs: progress edits on status messages, then the clip (or the reason it failed).

Everything here uses the bot token's channel endpoints, never the interaction token: a render
can outlive the 15-minute interaction token, and a restarted process has no interactions at
all. The flow's delivery claim makes the final post happen exactly once across restarts and
processes; the message nonce (with `enforce_nonce`) makes a retried upload after a lost
response return the first message instead of posting a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import TYPE_CHECKING

import discord

from avatarbot import errors, messages
from avatarbot.bots.discord.buttons import progress_view, result_view
from avatarbot.bots.discord.limits import DEFAULT_UPLOAD_LIMIT_BYTES, MAX_NONCE_CHARS

if TYPE_CHECKING:
    from avatarbot.bots.discord.bot import AvatarBot

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running", "encoding")
RETRY_AFTER_ERROR_S = 5.0
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


def mention(job) -> str:
    return f"<@{job.requester.user_id}>"


def status_text(job, queue_position: int | None) -> str:
    if job.state == "queued":
        line = messages.queued(queue_position)
    else:
        stage = job.stage or ("encoding" if job.state == "encoding" else "rendering")
        line = messages.progress(stage, job.step, job.total, job.eta_s)
    return messages.discord_status(mention(job), line)


def final_status_text(job, reason: str | None = None) -> str:
    """What the status message says once the job has ended."""
    reason = reason or (job.delivery or {}).get("error")
    if job.state in ("done", "delivered") and reason is None:
        return messages.discord_done(mention(job))
    default = messages.CANCELLED if job.state == "cancelled" else messages.RENDER_FAILED
    return messages.discord_failed(mention(job), reason or job.user_message or default)


class Deliveries:
    def __init__(self, bot: AvatarBot) -> None:
        self.bot = bot
        self.flow = bot.flow
        self.interval_s = bot.settings.discord.status_edit_interval_s
        self.post_timeout_s = bot.settings.jobs.delivery_claim_s * POST_DEADLINE_SHARE_OF_CLAIM
        self._latest: dict[str, tuple[str, str, str]] = {}  # job id -> (channel, message, text)
        self._shown: dict[str, str] = {}  # job id -> text on the status message now
        self._editors: dict[str, asyncio.Task] = {}

    async def run(self) -> None:
        """Follow the flow's updates for ever; a failure on one job never stops the others."""
        while True:
            try:
                async for job in self.flow.updates("discord"):
                    try:
                        await self.handle(job)
                    except Exception:
                        log.exception("handling job %s failed", job.id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job updates stopped; retrying")
                await asyncio.sleep(RETRY_AFTER_ERROR_S)

    async def handle(self, job) -> None:
        if job.state in ACTIVE:
            await self._progress(job)
        elif job.delivered_at is None and job.state in ("done", "failed", "cancelled"):
            await self._deliver(job)

    # --- progress ----------------------------------------------------------------------------------
    async def _progress(self, job) -> None:
        if not job.status_message_id:
            return
        position = job.queue_position
        if job.state == "queued" and position is None:
            position = await self.flow.queue_position(job.id)
        text = status_text(job, position)
        self._latest[job.id] = (job.reply_target.chat_id, job.status_message_id, text)
        if job.id not in self._editors or self._editors[job.id].done():
            self._editors[job.id] = asyncio.create_task(self._edit_loop(job.id))

    async def _edit_loop(self, job_id: str) -> None:
        """Edit at most once per interval, always ending on the newest text."""
        while job_id in self._latest:
            channel_id, message_id, text = self._latest.pop(job_id)
            if self._shown.get(job_id) == text:
                continue
            started = time.monotonic()
            try:
                await self._edit(channel_id, message_id, text, progress_view(job_id))
                self._shown[job_id] = text
            except discord.HTTPException as error:
                log.warning("status edit for job %s failed: %s", job_id, error.status)
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    async def _edit(self, channel_id: str, message_id: str, text: str, view: discord.ui.View | None) -> None:
        channel = self.bot.get_partial_messageable(int(channel_id))
        await channel.get_partial_message(int(message_id)).edit(content=text, view=view)

    def _stop_progress(self, job_id: str) -> None:
        self._latest.pop(job_id, None)
        self._shown.pop(job_id, None)
        editor = self._editors.pop(job_id, None)
        if editor is not None and editor is not asyncio.current_task():
            editor.cancel()

    # --- the outcome -------------------------------------------------------------------------------
    async def _deliver(self, job) -> None:
        self._stop_progress(job.id)
        if not await self.flow.begin_delivery(job.id):
            return  # another process (or an earlier pass) has it
        try:
            if job.state == "done":
                try:
                    record = await self._post_clip(job)
                    final_status = final_status_text(job)
                except errors.AvatarbotError as error:
                    # The clip can't be made to fit, or expired: say so instead of retrying for ever.
                    log.warning("job %s: clip not deliverable: %s", job.id, error.detail)
                    record = await self._post_failure(job, error.user_message)
                    final_status = final_status_text(job, error.user_message)
            elif job.state == "failed":
                final_status = final_status_text(job)
                record = await self._post_failure(job, job.user_message or messages.RENDER_FAILED)
            else:  # cancelled: the status message says so; no extra post
                record = {}
                final_status = final_status_text(job)
        except (discord.Forbidden, discord.NotFound) as error:
            # The channel is gone or we may not post there: retrying won't help.
            log.warning(
                "job %s: can't post in channel %s (%s)",
                job.id,
                job.reply_target.chat_id,
                error.status,
            )
            await self.flow.finish_delivery(job.id, {"undeliverable": error.status})
            return
        except TimeoutError:
            # Discord may have taken the post without answering in time: the retry, offered
            # again by the flow, carries the same nonce, so it can't make a second message.
            log.warning("job %s: posting timed out after %.0f s; will try again", job.id, self.post_timeout_s)
            await self.flow.abandon_delivery(job.id)
            return
        except BaseException:
            # Anything else (network, Discord 5xx, shutdown): let a later update try again.
            await self.flow.abandon_delivery(job.id)
            raise
        await self.flow.finish_delivery(job.id, record)
        if job.status_message_id:
            try:
                edit = self._edit(job.reply_target.chat_id, job.status_message_id, final_status, None)
                await asyncio.wait_for(edit, self.post_timeout_s)
            except discord.HTTPException as error:
                log.info("final status edit for job %s failed: %s", job.id, error.status)
            except TimeoutError:
                log.info("final status edit for job %s timed out", job.id)

    def upload_limit(self, job) -> int:
        """The server's limit as Discord reported it with the request, else the guild's, else 10 MiB."""
        extra = job.reply_target.extra or {}
        if extra.get("upload_limit"):
            return int(extra["upload_limit"])
        guild = self.bot.get_guild(int(extra["guild_id"])) if extra.get("guild_id") else None
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT_BYTES

    def _reference(self, job) -> discord.MessageReference | None:
        """The original message (voice reply, photo), else the status message of a slash command."""
        message_id = job.reply_target.message_id or job.status_message_id
        if not message_id:
            return None
        # fail_if_not_exists=False: if the user deleted their message, post the clip anyway.
        return discord.MessageReference(
            message_id=int(message_id),
            channel_id=int(job.reply_target.chat_id),
            fail_if_not_exists=False,
        )

    async def _post_clip(self, job) -> dict:
        channel = self.bot.get_partial_messageable(int(job.reply_target.chat_id))
        # The flow re-encodes the clip when it is over the server's upload limit.
        with await self.flow.clip_for_upload(job.id, self.upload_limit(job)) as clip:
            post = channel.send(
                messages.discord_clip_caption(mention(job), list(job.notes or [])),
                file=discord.File(clip.path, filename=f"avatar-{job.id}.mp4"),
                reference=self._reference(job),
                view=result_view(job.id),
                nonce=clip_nonce(job.id),
                allowed_mentions=discord.AllowedMentions(users=[discord.Object(int(job.requester.user_id))]),
            )
            message = await asyncio.wait_for(post, self.post_timeout_s)
        log.info(
            "job %s delivered as message %s (%d bytes)",
            job.id,
            message.id,
            clip.size_bytes,
        )
        return {
            "channel_id": str(message.channel.id),
            "message_id": str(message.id),
            "size_bytes": clip.size_bytes,
        }

    async def _post_failure(self, job, reason: str) -> dict:
        channel = self.bot.get_partial_messageable(int(job.reply_target.chat_id))
        post = channel.send(
            messages.discord_failed(mention(job), reason),
            reference=self._reference(job),
            nonce=clip_nonce(job.id),
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(int(job.requester.user_id))]),
        )
        message = await asyncio.wait_for(post, self.post_timeout_s)
        return {
            "channel_id": str(message.channel.id),
            "message_id": str(message.id),
            "error": reason,
        }
