"""The Discord bot end to end: the real discord.py client talks REST and gateway WebSocket to a
local fake Discord (tests/fake_discord.py), requests go through the real flow into a real Redis,
a real Celery worker renders them with the lite engine, and the clip comes back as a multipart
POST that we probe with ffprobe."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from contextlib import asynccontextmanager

import discord
import pytest
from pydantic import SecretStr

from avatarbot import messages
from avatarbot.bots.discord.bot import AvatarBot, configure_endpoints
from avatarbot.bots.discord.limits import INTERACTION_ACK_S
from avatarbot.tasks.jobs import JobStore
from tests import media_samples
from tests.conftest import with_overrides
from tests.fake_discord import (
    ADMINISTRATOR,
    ATTACH_FILES,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    EPHEMERAL_FLAG,
    MANAGE_MESSAGES,
    MEMBER_PERMISSIONS,
    MODAL,
    FakeDiscord,
)
from tests.media_samples import probe_mp4

pytestmark = pytest.mark.timeout(300)

TOKEN = "MTIzNDU2Nzg5.secret-discord-bot-token.xyz"
CLIP_WAIT_S = 120


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def voice_ogg(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("discord-samples")
    speech = media_samples.speech_wav(folder / "speech.wav", "Hello there, friend.")
    return media_samples.voice_note(speech, folder / "voice.ogg").read_bytes()


@pytest.fixture
def restore_endpoints(monkeypatch):
    """configure_endpoints changes discord.py class attributes; put them back after the test."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )


def discord_settings(settings, fake: FakeDiscord, **values):
    return with_overrides(
        settings,
        discord={
            "token": SecretStr(TOKEN),
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
            "sync_guilds": [int(fake.guild_id)],
            "cdn_hosts": ["127.0.0.1"],
            "status_edit_interval_s": 0.3,
            **values,
        },
    )


@asynccontextmanager
async def started_fake(**options):
    fake = FakeDiscord(token=TOKEN, **options)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@asynccontextmanager
async def running_bot(settings, fake: FakeDiscord):
    configure_endpoints(settings)
    bot = AvatarBot(settings)
    runner = asyncio.create_task(bot.start(TOKEN))
    try:
        await fake.wait_for(
            lambda: bot.is_ready() and fake.commands.get(fake.guild_id),
            30,
            "READY and sync",
        )
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(runner, 30)


def _custom_ids(message: dict) -> list[str]:
    return [c["custom_id"] for row in message.get("components", []) for c in row.get("components", [])]


def _status_message_for(fake: FakeDiscord, user_id: str) -> dict | None:
    """The bot's status message for this user's request: 'Clip for @user: ...', no attachment."""
    return next(
        (m for m in fake.bot_messages() if m["content"].startswith(f"Clip for <@{user_id}>:") and not m["attachments"]),
        None,
    )


def _clip_posts(fake: FakeDiscord, since: int = 0) -> list:
    return [r for r in fake.posts_with_files()[since:] if any(name.endswith(".mp4") for _, name, _ in r.files)]


async def _wait_clip(fake: FakeDiscord, count: int = 1):
    return await fake.wait_for(
        lambda: len(_clip_posts(fake)) >= count and _clip_posts(fake),
        CLIP_WAIT_S,
        "the clip",
    )


def _posted_message(fake: FakeDiscord, record) -> dict:
    return fake.messages[record.message_id]


def _jobs_of(settings, user_id: str) -> list:
    store = JobStore.from_settings(settings)
    try:
        return [job for job in store.list_jobs("discord") if job.requester.user_id == user_id]
    finally:
        store.redis.close()


# --- READY -------------------------------------------------------------------------------------
async def test_bot_reaches_ready_and_syncs_commands_to_the_dev_guild(settings, restore_endpoints, caplog):
    caplog.set_level(logging.DEBUG)
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake) as bot:
            assert bot.user.id == int(fake.bot.id)
            assert [g.id for g in bot.guilds] == [int(fake.guild_id)]
            synced = {(c["name"], c["type"]) for c in fake.commands[fake.guild_id]}
            assert {
                ("animate", 1),
                ("Animate", 3),
                ("help", 1),
                ("avatar-settings", 1),
            } <= synced
            assert fake.identified[0]["intents"] & discord.Intents(message_content=True).value
            animate = next(c for c in fake.commands[fake.guild_id] if c["name"] == "animate")
            options = {o["name"]: o for o in animate["options"]}
            assert options["photo"]["type"] == 11 and options["photo"]["required"]
            assert options["voice_name"]["autocomplete"]
            assert [c["value"] for c in options["quality"]["choices"]] == [
                "fast",
                "standard",
                "high",
            ]
    # The token went over the wire (the fake checked it) but never into a log line.
    assert caplog.records
    assert TOKEN not in caplog.text
    assert not any(TOKEN in str(r.args) for r in caplog.records)


async def test_the_cli_command_runs_the_bot_and_keeps_the_token_out_of_its_output(settings, tmp_path):
    """`avatarbot -v discord` in its own process, configured from the environment only."""
    import os
    import signal
    import sys

    async with started_fake() as fake:
        env = {
            **os.environ,
            "AVATARBOT_DISCORD__TOKEN": TOKEN,
            "AVATARBOT_DISCORD__API_BASE": fake.api_base,
            "AVATARBOT_DISCORD__GATEWAY_URL": fake.gateway_url,
            "AVATARBOT_DISCORD__SYNC_GUILDS": json.dumps([int(fake.guild_id)]),
            "AVATARBOT_REDIS__URL": settings.redis.url,
            "AVATARBOT_DATA_DIR": str(tmp_path),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "avatarbot", "-v", "discord",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        lines: list[bytes] = []

        async def read_until_ready() -> None:
            while not lines or b"Discord bot ready" not in lines[-1]:
                line = await process.stdout.readline()
                assert line, "the bot exited before READY"
                lines.append(line)

        try:
            await asyncio.wait_for(read_until_ready(), 60)
            assert fake.commands.get(fake.guild_id)
        finally:
            process.send_signal(signal.SIGINT)
            rest, _ = await asyncio.wait_for(process.communicate(), 30)
    text = b"".join(lines).decode(errors="replace") + rest.decode(errors="replace")
    assert TOKEN not in text
    assert process.returncode in (0, 130)


async def test_without_dev_guilds_commands_are_synced_globally(settings, restore_endpoints):
    async with started_fake() as fake:
        config = discord_settings(settings, fake, sync_guilds=[])
        configure_endpoints(config)
        bot = AvatarBot(config)
        runner = asyncio.create_task(bot.start(TOKEN))
        try:
            await fake.wait_for(lambda: bot.is_ready() and fake.commands.get(None), 30, "global sync")
        finally:
            await bot.close()
            await runner
        assert {c["name"] for c in fake.commands[None]} >= {
            "animate",
            "Animate",
            "help",
            "avatar-settings",
        }
        assert fake.guild_id not in fake.commands


async def test_a_refused_message_content_intent_is_reported(settings, restore_endpoints):
    async with started_fake(message_content_allowed=False) as fake:
        config = discord_settings(settings, fake)
        configure_endpoints(config)
        bot = AvatarBot(config)
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with bot:
                await asyncio.wait_for(bot.start(TOKEN), 30)


# --- /animate ------------------------------------------------------------------------------------
async def test_slash_animate_with_voice_posts_a_reply_clip(
    settings,
    restore_endpoints,
    render_worker,
    engine_slowdown,
    photo_bytes,
    voice_bytes,
    caplog,
):
    engine_slowdown(0.05)  # long enough to see progress edits
    caplog.set_level(logging.DEBUG)
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            user = fake.add_user("tess")
            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg", width=256, height=256)
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            interaction = await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})

            await fake.wait_for(lambda: interaction.callback, 10, "the interaction callback")
            assert interaction.callback_at - interaction.created_at < INTERACTION_ACK_S
            assert interaction.callback["type"] == DEFERRED_CHANNEL_MESSAGE
            assert interaction.callback["data"]["flags"] & EPHEMERAL_FLAG

            status = await fake.wait_for(lambda: _status_message_for(fake, user.id), 30, "the status message")
            [job] = _jobs_of(config, user.id)
            assert f"avatarbot:cancel:{job.id}" in _custom_ids(status)
            assert job.status_message_id == status["id"]
            assert job.reply_target.chat_id == fake.channel_id

            [post] = await _wait_clip(fake)
            clip_bytes = post.files[0][2]
            assert len(clip_bytes) <= fake.upload_limit
            info = probe_mp4(clip_bytes)
            assert info["codecs"] == ["audio:aac", "video:h264"]
            assert "mp4" in info["format"]
            assert info["duration"] == pytest.approx(1.6, abs=0.3)
            # A reply, by bot token, to the status message of this request, with its buttons.
            assert str(post.json["message_reference"]["message_id"]) == status["id"]
            assert post.json["nonce"] and post.json["enforce_nonce"] is True
            clip_message = _posted_message(fake, post)
            assert set(_custom_ids(clip_message)) == {
                f"avatarbot:again:{job.id}",
                f"avatarbot:delete:{job.id}",
            }
            assert f"<@{user.id}>" in clip_message["content"]

            # The status message showed progress on the way and says done at the end.
            status_texts = [body.get("content") for _, mid, body in fake.edits if mid == status["id"]]
            assert any("Rendering" in (text or "") and "%" in text for text in status_texts), status_texts
            # Throttled: progress edits (all but the final one) at least the interval apart.
            progress_times = [at for at, mid, _ in fake.edits if mid == status["id"]][:-1]
            gaps = [b - a for a, b in itertools.pairwise(progress_times)]
            assert all(gap >= 0.3 * 0.9 for gap in gaps), gaps
            await fake.wait_for(
                lambda: (
                    fake.messages[status["id"]]["content"] == messages.discord_status(f"<@{user.id}>", messages.DONE)
                ),
                10,
                "the final status",
            )
            assert fake.messages[status["id"]]["components"] == []
            # The ephemeral acknowledgement was completed with a followup.
            assert interaction.followups and interaction.followups[0]["content"] == messages.STARTED
            delivered = _jobs_of(config, user.id)[0]
            assert delivered.delivery["message_id"] == clip_message["id"]
    assert TOKEN not in caplog.text


async def test_clip_is_reencoded_to_fit_the_servers_upload_limit(
    settings, restore_endpoints, render_worker, photo_bytes, voice_bytes
):
    limit = 60 * 1024  # the fake reports (and enforces) this limit for the channel
    async with started_fake(upload_limit=limit) as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            user = fake.add_user("tiny")
            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            await fake.slash_command(
                user,
                "animate",
                {"quality": "high"},
                attachments={"photo": photo, "voice": voice},
            )
            [post] = await _wait_clip(fake)
            assert len(post.files[0][2]) <= limit
            assert probe_mp4(post.files[0][2])["codecs"] == ["audio:aac", "video:h264"]
            # Nothing was refused with 413 on the way.
            assert not [r for r in fake.requests if r.status == 413]


async def test_a_clip_that_cannot_fit_gets_a_clear_reply_not_endless_retries(
    settings, restore_endpoints, render_worker, photo_bytes, voice_bytes
):
    limit = 3 * 1024  # no 1.6 s video fits in 3 KiB
    async with started_fake(upload_limit=limit) as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            user = fake.add_user("unlucky")
            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})
            expected = messages.discord_status(f"<@{user.id}>", messages.clip_too_big(limit))
            reply = await fake.wait_for(
                lambda: next((m for m in fake.bot_messages() if m["content"] == expected and m.get("message_reference")), None),
                CLIP_WAIT_S, "the failure reply",
            )  # fmt: skip
            assert _clip_posts(fake) == []
            # The reply is posted first and recorded right after: wait for the record, then check it.
            [job] = await fake.wait_for(
                lambda: [j for j in _jobs_of(config, user.id) if j.delivery] or None, 10, "the delivery record"
            )
            assert job.delivery["message_id"] == reply["id"]


async def test_voice_name_autocomplete(settings, restore_endpoints):
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            user = fake.add_user("picker")
            interaction = await fake.autocomplete(user, "animate", {"voice_name": "de"}, focused="voice_name")
            await fake.wait_for(lambda: interaction.callback, 10, "autocomplete answer")
            values = [c["value"] for c in interaction.callback["data"]["choices"]]
            assert values and all(v.startswith("de") for v in values[:2])
            assert "de-female" in values


# --- bad input: ephemeral, nothing downloaded, no job --------------------------------------------
@pytest.mark.parametrize(
    "case",
    [
        "photo_wrong_type",
        "photo_too_big",
        "voice_wrong_type",
        "voice_too_long",
        "voice_and_text",
        "text_too_long",
    ],
)
async def test_bad_attachments_get_an_ephemeral_reply_and_no_job(
    settings, restore_endpoints, photo_bytes, voice_bytes, case
):
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        limits = config.limits
        user = fake.add_user(f"bad-{case}")
        photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
        voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
        options: dict = {}
        if case == "photo_wrong_type":
            photo = fake.add_attachment(b"just some notes", "notes.txt", "text/plain")
            expected = messages.NOT_AN_IMAGE
        elif case == "photo_too_big":
            photo = fake.add_attachment(
                photo_bytes,
                "huge.jpg",
                "image/jpeg",
                declared_size=limits.max_download_bytes + 1,
            )
            expected = messages.file_too_big(limits.max_download_bytes)
        elif case == "voice_wrong_type":
            voice = fake.add_attachment(photo_bytes, "face2.jpg", "image/jpeg")
            expected = messages.NOT_A_RECORDING
        elif case == "voice_too_long":
            voice = fake.add_attachment(
                voice_bytes,
                "voice-message.ogg",
                "audio/ogg",
                voice_message=True,
                duration_secs=limits.max_audio_seconds + 30,
            )
            expected = messages.audio_too_long(limits.max_audio_seconds + 30, limits.max_audio_seconds)
        elif case == "voice_and_text":
            options = {"text": "Hello there"}
            expected = messages.DISCORD_VOICE_OR_TEXT
        else:
            voice = None
            options = {"text": "word " * limits.max_text_chars}
            expected = messages.text_too_long(len(("word " * limits.max_text_chars).strip()), limits.max_text_chars)
        attachments = {"photo": photo, **({"voice": voice} if voice else {})}
        async with running_bot(config, fake):
            interaction = await fake.slash_command(user, "animate", options, attachments=attachments)
            await fake.wait_for(lambda: interaction.callback, 10, "the refusal")
            await asyncio.sleep(0.5)  # anything wrongly started after the refusal would show now
        assert interaction.callback_at - interaction.created_at < INTERACTION_ACK_S
        assert interaction.callback["type"] == CHANNEL_MESSAGE
        assert interaction.callback["data"]["flags"] & EPHEMERAL_FLAG
        assert interaction.callback["data"]["content"] == expected
        assert fake.cdn_downloads == []
        assert fake.bot_messages() == []
        assert _jobs_of(config, user.id) == []


async def test_a_channel_where_the_bot_cannot_attach_files_is_refused_up_front(
    settings, restore_endpoints, photo_bytes, voice_bytes
):
    async with started_fake() as fake:
        fake.app_permissions &= ~ATTACH_FILES
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            user = fake.add_user("muted")
            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            interaction = await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})
            await fake.wait_for(lambda: interaction.callback, 10, "the refusal")
        assert interaction.callback["data"]["content"] == messages.DISCORD_CANT_POST_HERE
        assert interaction.callback["data"]["flags"] & EPHEMERAL_FLAG
        assert fake.cdn_downloads == []
        assert _jobs_of(config, user.id) == []


async def test_undecodable_audio_is_refused_after_download_without_a_job(settings, restore_endpoints, photo_bytes):
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            user = fake.add_user("garbled")
            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            voice = fake.add_attachment(b"\x00\x01garbage" * 50, "voice.ogg", "audio/ogg")
            interaction = await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})
            await fake.wait_for(lambda: interaction.followups, 30, "the followup")
        [answer] = interaction.followups
        assert answer["flags"] & EPHEMERAL_FLAG
        assert answer["content"] == messages.CORRUPT_AUDIO
        assert fake.bot_messages() == []
        assert _jobs_of(config, user.id) == []


# --- context menu + modal --------------------------------------------------------------------------
async def test_context_menu_and_modal_reply_to_the_photo_message(
    settings, restore_endpoints, render_worker, photo_bytes
):
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            poster = fake.add_user("poster")
            user = fake.add_user("clicker")
            photo_message = await fake.post_message(
                poster,
                content="look",
                attachments=[fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")],
                channel_id=fake.thread_id,
            )
            menu = await fake.message_command(user, "Animate", photo_message)
            await fake.wait_for(lambda: menu.callback, 10, "the modal")
            assert menu.callback_at - menu.created_at < INTERACTION_ACK_S
            assert menu.callback["type"] == MODAL
            modal = menu.callback["data"]
            fields = [c["custom_id"] for row in modal["components"] for c in row["components"]]
            assert fields == ["text", "voice_name"]

            submitted = await fake.submit_modal(
                user,
                modal["custom_id"],
                {"text": "Hello from the thread", "voice_name": ""},
                fake.thread_id,
            )
            await fake.wait_for(lambda: submitted.callback, 10, "the modal acknowledgement")
            assert submitted.callback_at - submitted.created_at < INTERACTION_ACK_S
            [post] = await _wait_clip(fake)
            # In the photo's thread, replying to the photo message.
            assert post.path == f"/channels/{fake.thread_id}/messages"
            assert str(post.json["message_reference"]["message_id"]) == photo_message["id"]
            [job] = _jobs_of(config, user.id)
            assert job.options.text == "Hello from the thread"


async def test_context_menu_on_a_message_without_photo_is_refused(settings, restore_endpoints):
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            user = fake.add_user("clicker")
            message = await fake.post_message(user, content="no picture here")
            menu = await fake.message_command(user, "Animate", message)
            await fake.wait_for(lambda: menu.callback, 10, "the refusal")
            assert menu.callback["type"] == CHANNEL_MESSAGE
            assert menu.callback["data"]["content"] == messages.DISCORD_NO_PHOTO
            assert menu.callback["data"]["flags"] & EPHEMERAL_FLAG


# --- reply with a voice message --------------------------------------------------------------------
async def test_voice_message_reply_to_a_photo_starts_a_job(
    settings, restore_endpoints, render_worker, photo_bytes, voice_ogg
):
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            poster = fake.add_user("poster")
            speaker = fake.add_user("speaker")
            photo_message = await fake.post_message(
                poster,
                attachments=[fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")],
            )
            voice = fake.add_attachment(
                voice_ogg,
                "voice-message.ogg",
                "audio/ogg",
                voice_message=True,
                duration_secs=2.0,
            )
            reply = await fake.post_message(speaker, attachments=[voice], reply_to=photo_message, voice_message=True)
            [post] = await _wait_clip(fake)
            assert str(post.json["message_reference"]["message_id"]) == reply["id"]
            status = _status_message_for(fake, speaker.id)
            assert status["message_reference"]["message_id"] == reply["id"]
            [job] = _jobs_of(config, speaker.id)
            assert job.reply_target.message_id == reply["id"]
            assert job.requester.server_id == fake.guild_id


async def test_without_the_intent_a_reply_needs_a_mention(
    settings, restore_endpoints, render_worker, photo_bytes, voice_ogg
):
    async with started_fake() as fake:
        config = discord_settings(settings, fake, message_content_intent=False)
        async with running_bot(config, fake):
            assert not fake.identified[0]["intents"] & discord.Intents(message_content=True).value
            poster = fake.add_user("poster")
            speaker = fake.add_user("speaker")
            photo_message = await fake.post_message(
                poster,
                attachments=[fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")],
            )

            def voice():
                return fake.add_attachment(
                    voice_ogg,
                    "voice-message.ogg",
                    "audio/ogg",
                    voice_message=True,
                    duration_secs=2.0,
                )

            await fake.post_message(
                speaker,
                attachments=[voice()],
                reply_to=photo_message,
                voice_message=True,
            )
            await asyncio.sleep(1.5)
            assert _jobs_of(config, speaker.id) == []
            mentioned = await fake.post_message(
                speaker,
                attachments=[voice()],
                reply_to=photo_message,
                voice_message=True,
                mention_bot=True,
            )
            [post] = await _wait_clip(fake)
            assert str(post.json["message_reference"]["message_id"]) == mentioned["id"]

            helper = await fake.slash_command(speaker, "help", {})
            await fake.wait_for(lambda: helper.callback, 10, "help")
            assert "mention me" in helper.callback["data"]["content"]


# --- the interaction token expires; the clip still arrives -----------------------------------------
async def test_a_render_that_ends_after_the_token_expired_still_posts(
    settings,
    restore_endpoints,
    render_worker,
    engine_slowdown,
    photo_bytes,
    voice_bytes,
):
    engine_slowdown(0.1)
    lifetime = 1.5
    async with started_fake(interaction_token_lifetime_s=lifetime) as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            user = fake.add_user("patient")
            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            interaction = await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})
            [post] = await _wait_clip(fake)
            assert post.at - interaction.created_at > lifetime, "the render finished before the token expired"
            assert post.path == f"/channels/{fake.channel_id}/messages"
            # Status edits after expiry went through the bot token too.
            status = _status_message_for(fake, user.id)
            late_edits = [
                at for at, mid, _ in fake.edits if mid == status["id"] and at - interaction.created_at > lifetime
            ]
            assert late_edits
            # The fake really refuses the dead token (so nothing above could have used it).
            assert not fake._token_alive(interaction)


# --- exactly once -----------------------------------------------------------------------------------
async def test_a_retried_upload_does_not_post_twice(
    settings, restore_endpoints, render_worker, photo_bytes, voice_bytes
):
    async with started_fake(lose_first_upload_response=True) as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            user = fake.add_user("lucky")
            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})
            await _wait_clip(fake)
            job = await fake.wait_for(lambda: [j for j in _jobs_of(config, user.id) if j.delivery], 30, "delivery")
        uploads = [r for r in fake.requests if r.files and r.path.startswith("/channels/")]
        assert [r.status for r in uploads] == [502, 200]  # the first answer was lost, discord.py retried
        assert uploads[0].message_id == uploads[1].message_id  # the nonce made the retry return the same message
        clips = [m for m in fake.bot_messages() if m["attachments"]]
        assert len(clips) == 1
        assert job[0].delivery["message_id"] == clips[0]["id"]


async def test_a_job_running_when_the_bot_restarts_is_finished_by_the_new_process(
    settings, restore_endpoints, render_worker, engine_slowdown, photo_bytes, voice_bytes
):
    engine_slowdown(0.15)
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        user = fake.add_user("restarter")
        async with running_bot(config, fake):
            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})
            status = await fake.wait_for(lambda: _status_message_for(fake, user.id), 30, "the status message")
        [job] = _jobs_of(config, user.id)
        assert job.state in ("queued", "running"), "the render ended before the restart; slow it down more"
        async with running_bot(config, fake):
            [post] = await _wait_clip(fake)
            expected = messages.discord_status(f"<@{user.id}>", messages.DONE)
            await fake.wait_for(lambda: fake.messages[status["id"]]["content"] == expected, 10, "the final status")
        assert str(post.json["message_reference"]["message_id"]) == status["id"]
        assert len(_clip_posts(fake)) == 1


# --- buttons after a restart -----------------------------------------------------------------------
async def test_again_and_delete_work_after_a_restart(
    settings, restore_endpoints, render_worker, photo_bytes, voice_bytes
):
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        user = fake.add_user("owner")
        stranger = fake.add_user("stranger")
        moderator = fake.add_user("mod", permissions=MEMBER_PERMISSIONS | MANAGE_MESSAGES)
        async with running_bot(config, fake):
            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})
            [post] = await _wait_clip(fake)
            clip_message = _posted_message(fake, post)
        [job] = _jobs_of(config, user.id)

        async with running_bot(config, fake) as second:  # a new process, as far as the buttons know
            assert second.lifecycle is not None
            refused = await fake.click(stranger, clip_message, f"avatarbot:again:{job.id}")
            await fake.wait_for(lambda: refused.callback, 10, "the refusal")
            assert refused.callback["data"]["content"] == messages.NOT_YOURS
            assert refused.callback["data"]["flags"] & EPHEMERAL_FLAG

            again = await fake.click(user, clip_message, f"avatarbot:again:{job.id}")
            await fake.wait_for(lambda: again.callback, 10, "again's acknowledgement")
            assert again.callback_at - again.created_at < INTERACTION_ACK_S
            await _wait_clip(fake, 2)
            jobs = _jobs_of(config, user.id)
            assert len(jobs) == 2
            new_job = next(j for j in jobs if j.id != job.id)
            assert new_job.options.seed != job.options.seed
            assert again.followups[0]["content"] == messages.AGAIN_STARTED

            denied = await fake.click(stranger, clip_message, f"avatarbot:delete:{job.id}")
            await fake.wait_for(lambda: denied.callback, 10, "the refusal")
            assert denied.callback["data"]["content"] == messages.NOT_YOURS
            assert clip_message["id"] in fake.messages

            deleted = await fake.click(moderator, clip_message, f"avatarbot:delete:{job.id}")
            await fake.wait_for(
                lambda: clip_message["id"] in fake.deleted_message_ids,
                10,
                "the deletion",
            )
            assert deleted.callback["data"]["content"] == messages.DELETED


async def test_cancel_button_stops_a_running_job(
    settings,
    restore_endpoints,
    render_worker,
    engine_slowdown,
    photo_bytes,
    voice_bytes,
):
    engine_slowdown(0.3)
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        async with running_bot(config, fake):
            user = fake.add_user("quitter")
            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})
            status = await fake.wait_for(lambda: _status_message_for(fake, user.id), 30, "the status message")
            [job] = _jobs_of(config, user.id)
            press = await fake.click(user, status, f"avatarbot:cancel:{job.id}")
            await fake.wait_for(lambda: press.callback, 10, "cancel's answer")
            assert press.callback["data"]["content"] == messages.CANCELLING
            expected = messages.discord_status(f"<@{user.id}>", messages.CANCELLED)
            await fake.wait_for(
                lambda: fake.messages[status["id"]]["content"] == expected,
                60,
                "the cancelled status",
            )
            assert _jobs_of(config, user.id)[0].state == "cancelled"
            assert _clip_posts(fake) == []


# --- per-server settings -------------------------------------------------------------------------
async def test_server_settings_limit_channels_and_users(settings, restore_endpoints, photo_bytes, voice_bytes):
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        admin = fake.add_user("admin", permissions=MEMBER_PERMISSIONS | ADMINISTRATOR)
        user = fake.add_user("member")
        async with running_bot(config, fake):
            saved = await fake.slash_command(
                admin,
                "avatar-settings",
                {"allow": True},
                subcommand="channel",
                channels={"channel": fake.other_channel_id},
            )
            await fake.wait_for(lambda: saved.callback, 10, "settings saved")
            assert saved.callback["data"]["content"].startswith(messages.SETTINGS_SAVED)
            assert f"<#{fake.other_channel_id}>" in saved.callback["data"]["content"]
            synced = next(c for c in fake.commands[fake.guild_id] if c["name"] == "avatar-settings")
            assert int(synced["default_member_permissions"]) == discord.Permissions(manage_guild=True).value

            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            elsewhere = await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})
            await fake.wait_for(lambda: elsewhere.followups, 30, "the refusal")
            assert elsewhere.followups[0]["content"] == messages.discord_channel_not_allowed(
                [f"<#{fake.other_channel_id}>"]
            )
            assert elsewhere.followups[0]["flags"] & EPHEMERAL_FLAG
            assert _jobs_of(config, user.id) == []

            defaults = await fake.slash_command(
                admin,
                "avatar-settings",
                {"voice_name": "de-male", "quality": "high"},
                subcommand="defaults",
            )
            await fake.wait_for(lambda: defaults.callback, 10, "defaults saved")
            assert "de-male" in defaults.callback["data"]["content"]
            first = await fake.slash_command(
                user,
                "animate",
                {"text": "Guten Tag"},
                attachments={"photo": photo},
                channel_id=fake.other_channel_id,
            )
            await fake.wait_for(lambda: first.followups, 60, "first request")
            assert first.followups[0]["content"] == messages.STARTED
            [job] = _jobs_of(config, user.id)
            assert (job.options.voice_name, job.options.quality) == ("de-male", "high")

            limit = await fake.slash_command(admin, "avatar-settings", {"per_hour": 1}, subcommand="user-limit")
            await fake.wait_for(lambda: limit.callback, 10, "limit saved")
            second = await fake.slash_command(
                user, "animate", {"quality": "high"}, attachments={"photo": photo, "voice": voice},
                channel_id=fake.other_channel_id,
            )  # fmt: skip
            await fake.wait_for(lambda: second.followups, 30, "second request")
            assert second.followups[0]["flags"] & EPHEMERAL_FLAG
            assert "hour" in second.followups[0]["content"]
            assert len(_jobs_of(config, user.id)) == 1
