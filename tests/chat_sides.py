"""The two chat surfaces behind one small interface, for tests written once and run on both.

A `Side` starts its platform's fake server (tests/fake_telegram.py, tests/fake_discord.py) and
runs the real bot against it; tests then play users (a photo, a voice note replying to it, a
button press) and ask the same questions on both: what the bot said in reply to a request, which
clips it posted, how many uploads and edits it made, which jobs exist. `make_side` (a fixture
parametrized over both platforms) gives `async with make_side(**options) as side`.
"""

from __future__ import annotations

import asyncio
import io
import time
from contextlib import asynccontextmanager

import discord
import pytest
from pydantic import SecretStr

from avatarbot import messages
from avatarbot.settings import TelegramSettings
from avatarbot.tasks.jobs import JobStore
from tests import media_samples
from tests.conftest import with_overrides
from tests.fake_discord import FakeDiscord
from tests.fake_telegram import TOKEN as TELEGRAM_TOKEN
from tests.fake_telegram import FakeTelegram

DISCORD_TOKEN = "MTIzNDU2Nzg5.lifecycle-discord-token.xyz"
CLIP_WAIT_S = 120
# Long enough for the flow to offer an undelivered job again (delivery_claim_s below): a retry
# loop, if there were one, would show in the counts.
QUIET_S = 5.0
DELIVERY_CLAIM_S = 3


class TelegramSide:
    """A supergroup on the fake Bot API; users post photos and reply to them with voice notes."""

    name = "telegram"

    def __init__(self, settings, samples, *, upload_limit: int | None = None):
        self.fake = FakeTelegram()
        self.base_settings = settings
        self.samples = samples
        self.upload_limit = upload_limit

    async def start(self) -> None:
        await self.fake.start()
        telegram = TelegramSettings(
            token=TELEGRAM_TOKEN, base_url=self.fake.base_url, base_file_url=self.fake.base_file_url,
            upload_limit_bytes=self.upload_limit,
        )  # fmt: skip
        self.settings = self.base_settings.model_copy(update={"telegram": telegram})
        self.chat = self.fake.group()

    async def stop(self) -> None:
        await self.fake.stop()

    @asynccontextmanager
    async def running(self):
        from avatarbot.bots.telegram.bot import TelegramBot

        async with TelegramBot(self.settings).running() as bot:
            yield bot

    def user(self, n: int, name: str) -> dict:
        return self.fake.user(n, name)

    def make_moderator(self, user: dict) -> None:
        self.fake.make_admin(self.chat, user)

    async def photo(self, user: dict) -> dict:
        return self.fake.send(self.chat, user, photo=self.samples["photo"])

    async def request(self, user: dict, photo: dict) -> dict:
        return self.fake.send(self.chat, user, voice=self.samples["voice"], reply_to=photo)

    def _uploads(self, *, ok_only: bool = True) -> list:
        calls = [c for c in self.fake.calls if c.method in ("sendVideo", "sendDocument")]
        return [c for c in calls if c.status == 200] if ok_only else calls

    def clips(self) -> list[dict]:
        """Every clip message posted, oldest first."""
        return [c.result for c in self._uploads()]

    def upload_attempts(self) -> int:
        return len(self._uploads(ok_only=False))

    def replies_to(self, request: dict) -> list[dict]:
        """The bot's messages replying to `request`, as they read now."""
        chat = request["chat"]["id"]
        return [
            message
            for (chat_id, _), message in self.fake.messages.items()
            if chat_id == chat
            and message["from"]["id"] == self.fake.bot["id"]
            and (message.get("reply_to_message") or {}).get("message_id") == request["message_id"]
            and (chat_id, message["message_id"]) not in self.fake.deleted
        ]

    def text_of(self, message: dict) -> str:
        return message.get("text") or message.get("caption") or ""

    def is_status(self, message: dict) -> bool:
        return False  # the status message turns into the outcome: it is the answer

    def is_clip(self, message: dict) -> bool:
        return "video" in message or "document" in message

    def edits(self) -> int:
        return len(self.fake.calls_to("editMessageText"))

    def too_big(self, limit: int) -> tuple[str, str, dict, int]:
        """The failure for a clip over `limit` (text, code, params, uploads): Telegram's limit is
        known up front, so the re-encode shows it can't fit and nothing is uploaded in vain."""
        # The code is the encoder's; the sentence's key travels in the params (to say it in any language).
        return messages.clip_too_big(limit), "encode_failed", {"limit_bytes": limit, "key": "clip_too_big"}, 0

    def fail_uploads(self, *statuses: int) -> None:
        for status in statuses:
            self.fake.fail("sendVideo", status)

    def buttons(self, message: dict) -> dict[str, str]:
        """action -> button data of a bot message."""
        names = {"a": "again", "d": "delete", "c": "cancel"}
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        return {names[b["callback_data"][0]]: b["callback_data"] for row in rows for b in row}

    def forged(self, action: str, job_id: str) -> str:
        return f"{action[0]}:{job_id}"

    async def press(self, user: dict, message: dict, data: str) -> str | None:
        query = self.fake.press(message, user, data)
        answer = await self.fake.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query)
        return answer.params.get("text", "")

    def status_message(self, job) -> dict:
        return self.fake.messages[(int(job.reply_target.chat_id), int(job.status_message_id))]

    def link_to(self, message: dict) -> str:
        """How Telegram links a supergroup's message: t.me/c/<id without -100>/<message id>."""
        return f"https://t.me/c/{str(message['chat']['id']).removeprefix('-100')}/{message['message_id']}"

    def hostile_host(self, mode: str) -> None:
        self.fake.download_mode = mode

    def deleted(self, message: dict) -> bool:
        return (message["chat"]["id"], message["message_id"]) in self.fake.deleted

    def jobs(self) -> list:
        store = JobStore.from_settings(self.settings)
        try:
            return [job for job in store.list_jobs("telegram") if job.reply_target.chat_id == str(self.chat["id"])]
        finally:
            store.redis.close()


class DiscordSide:
    """A guild channel on the fake Discord; users post photos and reply to them with voice messages."""

    name = "discord"

    def __init__(self, settings, samples, *, upload_limit: int | None = None):
        self.fake = FakeDiscord(token=DISCORD_TOKEN, upload_limit=upload_limit)
        self.base_settings = settings
        self.samples = samples

    async def start(self) -> None:
        await self.fake.start()
        self.settings = with_overrides(
            self.base_settings,
            discord={
                "token": SecretStr(DISCORD_TOKEN), "api_base": self.fake.api_base,
                "gateway_url": self.fake.gateway_url, "sync_guilds": [int(self.fake.guild_id)],
                "cdn_hosts": ["127.0.0.1"], "status_edit_interval_s": 0.3,
            },
        )  # fmt: skip
        self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)

    async def stop(self) -> None:
        await self.fake.close()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved

    @asynccontextmanager
    async def running(self):
        from avatarbot.bots.discord.bot import AvatarBot, configure_endpoints

        configure_endpoints(self.settings)
        bot = AvatarBot(self.settings)
        runner = asyncio.create_task(bot.start(DISCORD_TOKEN))
        try:
            await self.fake.wait_for(
                lambda: bot.is_ready() and self.fake.commands.get(self.fake.guild_id), 30, "READY and sync"
            )
            yield bot
        finally:
            await bot.close()
            await asyncio.wait_for(runner, 30)

    def user(self, n: int, name: str):
        return self.fake.add_user(name)

    def make_moderator(self, user) -> None:
        from tests.fake_discord import MANAGE_MESSAGES, MEMBER_PERMISSIONS

        user.permissions = MEMBER_PERMISSIONS | MANAGE_MESSAGES

    async def photo(self, user) -> dict:
        photo = self.fake.add_attachment(self.samples["photo"], "face.jpg", "image/jpeg")
        return await self.fake.post_message(user, attachments=[photo])

    async def request(self, user, photo: dict) -> dict:
        voice = self.fake.add_attachment(
            self.samples["voice"], "voice-message.ogg", "audio/ogg", voice_message=True, duration_secs=2.0
        )
        return await self.fake.post_message(user, attachments=[voice], reply_to=photo, voice_message=True)

    def _uploads(self) -> list:
        return [r for r in self.fake.requests if r.method == "POST" and r.path.startswith("/channels/") and r.files]

    def clips(self) -> list[dict]:
        ids = []
        for record in self._uploads():
            if record.status == 200 and record.message_id not in ids:
                ids.append(record.message_id)
        return [self.fake.messages[i] for i in ids if i in self.fake.messages]

    def upload_attempts(self) -> int:
        return len(self._uploads())

    def replies_to(self, request: dict) -> list[dict]:
        return [
            message
            for message in self.fake.bot_messages()
            if (message.get("message_reference") or {}).get("message_id") == request["id"]
        ]

    def text_of(self, message: dict) -> str:
        return message["content"]

    def is_status(self, message: dict) -> bool:
        """A job's status message, which ends on the outcome besides the reply that says it."""
        return message["id"] in {job.status_message_id for job in self.jobs()}

    def is_clip(self, message: dict) -> bool:
        return bool(message["attachments"])

    def edits(self) -> int:
        return len(self.fake.edits)

    def too_big(self, limit: int) -> tuple[str, str, dict, int]:
        """The failure for a clip over `limit` (text, code, params, uploads): a voice reply
        carries no upload limit (only interactions do), so the bot tries the server's 10 MiB and
        Discord answers 413, once."""
        return messages.CLIP_REFUSED, "clip_refused", {}, 1

    def fail_uploads(self, *statuses: int) -> None:
        self.fake.upload_faults.extend(statuses)

    def buttons(self, message: dict) -> dict[str, str]:
        ids = [c["custom_id"] for row in message.get("components", []) for c in row.get("components", [])]
        return {custom_id.split(":")[1]: custom_id for custom_id in ids}

    def forged(self, action: str, job_id: str) -> str:
        return f"avatarbot:{action}:{job_id}"

    async def press(self, user, message: dict, custom_id: str) -> str | None:
        """The answer to the press; None when discord.py dropped it (a custom_id that isn't on the
        message matches no component of it)."""
        interaction = await self.fake.click(user, message, custom_id)
        try:
            await self.fake.wait_for(lambda: interaction.callback, 5, "the press's answer")
        except AssertionError:
            return None
        if interaction.followups:
            return interaction.followups[0]["content"]
        data = interaction.callback.get("data") or {}
        if "content" in data:
            return data["content"]
        await self.fake.wait_for(lambda: interaction.followups, 10, "the press's followup")
        return interaction.followups[0]["content"]

    def deleted(self, message: dict) -> bool:
        return message["id"] in self.fake.deleted_message_ids

    def status_message(self, job) -> dict:
        return self.fake.messages[job.status_message_id]

    def link_to(self, message: dict) -> str:
        return f"https://discord.com/channels/{message['guild_id']}/{message['channel_id']}/{message['id']}"

    def hostile_host(self, mode: str) -> None:
        self.fake.cdn_mode = mode

    def jobs(self) -> list:
        store = JobStore.from_settings(self.settings)
        try:
            return [job for job in store.list_jobs("discord") if job.reply_target.chat_id == self.fake.channel_id]
        finally:
            store.redis.close()


SIDES = {"telegram": TelegramSide, "discord": DiscordSide}


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> dict:
    """A real face (JPEG) and a spoken voice note (OGG/Opus), as chat apps send them."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("chat-samples")
    photo = Image.fromarray(data.astronaut()).resize((256, 256))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=85)
    speech = media_samples.speech_wav(folder / "speech.wav", "Hello there, friend.")
    voice = media_samples.voice_note(speech, folder / "voice.ogg").read_bytes()
    return {
        "photo": buffer.getvalue(),
        "voice": voice,
        "voice_seconds": media_samples.probe_mp4(voice)["duration"],
        "corrupt_voice": media_samples.corrupt(voice, keep=60),
    }


@pytest.fixture
def lifecycle_settings(settings):
    # A short delivery claim: an undelivered job is offered again within seconds, so a retry
    # loop (the bug these tests guard against) shows within QUIET_S.
    return with_overrides(settings, jobs={"delivery_claim_s": DELIVERY_CLAIM_S})


@pytest.fixture(params=sorted(SIDES))
def make_side(request, lifecycle_settings, samples, render_worker):
    """`async with make_side(**options) as side`: the fake server of this test's platform, started."""

    @asynccontextmanager
    async def make(delivery_claim_s: int = DELIVERY_CLAIM_S, download_deadline_s: float = 60.0, **options):
        settings = with_overrides(
            lifecycle_settings,
            jobs={"delivery_claim_s": delivery_claim_s},
            limits={"download_deadline_s": download_deadline_s},
        )
        side = SIDES[request.param](settings, samples, **options)
        await side.start()
        try:
            yield side
        finally:
            await side.stop()

    return make


async def until(predicate, what: str, timeout: float = CLIP_WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def said(side, request) -> list[str]:
    """What the bot said in reply to `request`, one entry per message (clips aside)."""
    return [side.text_of(m) for m in side.replies_to(request) if not side.is_clip(m) and not side.is_status(m)]


def clips_replying(side, request) -> list[dict]:
    return [m for m in side.replies_to(request) if side.is_clip(m)]
