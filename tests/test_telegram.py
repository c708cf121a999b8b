"""The Telegram bot end to end: the real PTB Application polls a local fake Bot API server over
HTTP, requests go through the real flow into a real Redis, a real Celery worker renders them with
the lite engine, and the clip comes back as a multipart sendVideo that we probe with ffprobe."""

from __future__ import annotations

import asyncio
import itertools
import logging
from contextlib import asynccontextmanager

import pytest

from avatarbot import messages
from avatarbot.bots.telegram.bot import TelegramBot
from avatarbot.service.chat_config import ChatConfigStore
from avatarbot.settings import TelegramSettings
from avatarbot.tasks.jobs import JobStore
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.media_samples import probe_mp4

pytestmark = pytest.mark.timeout(300)

CLIP_WAIT_S = 120


# --- the bot against the fake server --------------------------------------------------------------
@pytest.fixture
async def tg():
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def tg_settings(settings, tg, render_worker):
    telegram = TelegramSettings(token=TOKEN, base_url=tg.base_url, base_file_url=tg.base_file_url)
    return settings.model_copy(update={"telegram": telegram})


@asynccontextmanager
async def running_bot(tg_settings):
    bot = TelegramBot(tg_settings)
    async with bot.running():
        yield bot


def _jobs(tg_settings, tg: FakeTelegram) -> list:
    """This test's jobs (Redis is shared by the whole session)."""
    jobs = JobStore.from_settings(tg_settings).list_jobs("telegram")
    return [job for job in jobs if int(job.reply_target.chat_id) in tg.chat_ids]


def _replies_to(message: dict):
    return lambda call: (call.params.get("reply_parameters") or {}).get("message_id") == message["message_id"]


def _edits(sent):
    return lambda call: call.params.get("message_id") == sent.result["message_id"]


async def _wait_clip(tg: FakeTelegram, request: dict, count: int = 1):
    return await tg.wait_for("sendVideo", _replies_to(request), timeout=CLIP_WAIT_S, count=count)


# --- the main flow -------------------------------------------------------------------------------
async def test_voice_note_reply_in_a_forum_topic_gets_a_clip_in_that_topic(tg, tg_settings, samples):
    alice = tg.user()
    chat = tg.group(forum=True)
    topic = tg.topic(chat, "Talking heads")
    async with running_bot(tg_settings):
        photo = tg.send(chat, alice, photo=samples["photo"], topic=topic)
        voice = tg.send(
            chat,
            alice,
            voice=samples["voice"],
            voice_duration=round(samples["voice_seconds"]),
            reply_to=photo,
            topic=topic,
        )
        status = await tg.wait_for("sendMessage", _replies_to(voice))
        assert status.params["text"] == messages.TELEGRAM_CHECKING  # at once, before the files are fetched
        assert status.params["message_thread_id"] == topic["message_id"]
        shown = await tg.wait_for("editMessageText", _edits(status))
        assert shown.params["text"].split()[0] in {"Queued", "Preparing", "Rendering", "Encoding"}
        assert shown.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"].startswith("c:")
        clip_call = await _wait_clip(tg, voice)
        await tg.wait_for("deleteMessage")

    params = clip_call.params
    assert params["chat_id"] == chat["id"] and params["message_thread_id"] == topic["message_id"]
    assert params["supports_streaming"] is True
    clip = clip_call.file("video").data
    info = probe_mp4(clip)
    assert "mp4" in info["format"]
    assert [c.split(":")[0] for c in info["codecs"]] == ["audio", "video"]
    assert info["duration"] == pytest.approx(samples["voice_seconds"], abs=0.3)
    assert params["duration"] == max(1, round(info["duration"]))
    assert params["width"] > 0 and params["height"] > 0
    assert clip_call.file("thumbnail").data[:2] == b"\xff\xd8"  # a JPEG
    buttons = [b["callback_data"] for b in params["reply_markup"]["inline_keyboard"][0]]
    assert [b[:2] for b in buttons] == ["a:", "d:"]
    # The status message was replaced by the clip, and the chat showed "sending video".
    deleted = tg.calls_to("deleteMessage")
    assert [c.params["message_id"] for c in deleted] == [status.result["message_id"]]
    action = tg.calls_to("sendChatAction")[0]
    assert action.params["action"] == "upload_video" and action.params["message_thread_id"] == topic["message_id"]
    [job] = _jobs(tg_settings, tg)
    assert job.state == "delivered" and job.delivery["message_id"] == str(clip_call.result["message_id"])


async def test_caption_and_reply_animate_speak_the_text(tg, tg_settings, samples):
    alice = tg.user()
    chat = tg.private_chat(alice)
    async with running_bot(tg_settings):
        captioned = tg.send(chat, alice, photo=samples["photo"], caption="/animate Good morning!")
        clip = await _wait_clip(tg, captioned)
        photo = tg.send(chat, alice, photo=samples["photo"])
        await tg.wait_for("sendMessage", lambda c: c.params["text"] == messages.TELEGRAM_PHOTO_HINT)
        command = tg.send(chat, alice, text="/animate Hello again", reply_to=photo)
        second = await _wait_clip(tg, command)
    for call in (clip, second):
        info = probe_mp4(call.file("video").data)
        assert [c.split(":")[0] for c in info["codecs"]] == ["audio", "video"]
        assert info["duration"] > 0.3
        assert "message_thread_id" not in call.params
    texts = sorted(job.options.text for job in _jobs(tg_settings, tg))
    assert texts == ["Good morning!", "Hello again"]


async def test_animate_without_photo_or_text_replies_with_help(tg, tg_settings, samples):
    alice = tg.user()
    chat = tg.group()
    async with running_bot(tg_settings):
        bare = tg.send(chat, alice, text="/animate")
        await tg.wait_for(
            "sendMessage", lambda c: c.params["text"] == messages.TELEGRAM_ANIMATE_HELP and _replies_to(bare)(c)
        )
        photo = tg.send(chat, alice, photo=samples["photo"])
        empty = tg.send(chat, alice, text="/animate@avatar_test_bot", reply_to=photo)
        await tg.wait_for("sendMessage", _replies_to(empty))
    assert tg.calls_to("sendMessage")[-1].params["text"] == messages.TELEGRAM_ANIMATE_HELP
    assert _jobs(tg_settings, tg) == []


async def test_again_and_delete_buttons(tg, tg_settings, samples):
    alice, bob, carol = tg.user(1, "Alice"), tg.user(2, "Bob"), tg.user(3, "Carol")
    chat = tg.group()
    tg.make_admin(chat, carol)
    async with running_bot(tg_settings):
        photo = tg.send(chat, alice, photo=samples["photo"])
        voice = tg.send(chat, alice, voice=samples["voice"], reply_to=photo)
        first = await _wait_clip(tg, voice)
        clip_message = first.result
        again_data, delete_data = [b["callback_data"] for b in first.params["reply_markup"]["inline_keyboard"][0]]

        # Again from Bob, under Alice's clip: refused (he would get a clip of her face in his name).
        query = tg.press(clip_message, bob, again_data)
        answer = await tg.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query)
        assert answer.params["text"] == messages.NOT_YOURS
        assert len(_jobs(tg_settings, tg)) == 1
        # Again from Alice: a new job with the same inputs and a new seed, replying to the same voice note.
        query = tg.press(clip_message, alice, again_data)
        answer = await tg.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query)
        assert answer.params["text"] == messages.AGAIN_STARTED
        await _wait_clip(tg, voice, count=2)
        jobs = _jobs(tg_settings, tg)
        assert len(jobs) == 2 and jobs[0].options.seed != jobs[1].options.seed

        # Delete: not Bob's clip, so refused; Carol is a chat admin; Alice asked for it.
        query = tg.press(clip_message, bob, delete_data)
        answer = await tg.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query)
        assert answer.params["text"] == messages.NOT_YOURS
        assert not [c for c in tg.calls_to("deleteMessage") if c.params["message_id"] == clip_message["message_id"]]
        query = tg.press(clip_message, carol, delete_data)
        await tg.wait_for("deleteMessage", lambda c: c.params["message_id"] == clip_message["message_id"])
        # Whoever pressed Again owns the new take.
        second_clip = tg.calls_to("sendVideo")[1].result
        second_delete = [b["callback_data"] for b in second_clip["reply_markup"]["inline_keyboard"][0]][1]
        tg.press(second_clip, alice, second_delete)
        await tg.wait_for("deleteMessage", lambda c: c.params["message_id"] == second_clip["message_id"])
    assert (chat["id"], clip_message["message_id"]) in tg.deleted


async def test_buttons_work_after_a_restart(tg, tg_settings, samples):
    alice = tg.user()
    chat = tg.private_chat(alice)
    async with running_bot(tg_settings):
        photo = tg.send(chat, alice, photo=samples["photo"], caption="/animate Hi")
        first = await _wait_clip(tg, photo)
    async with running_bot(tg_settings):  # a new process knows nothing but Redis
        delete_data = [b["callback_data"] for b in first.params["reply_markup"]["inline_keyboard"][0]][1]
        tg.press(first.result, alice, delete_data)
        await tg.wait_for("deleteMessage", lambda c: c.params["message_id"] == first.result["message_id"])


# --- bad input: a clear reply, no job ------------------------------------------------------------
async def test_bad_voice_notes_get_a_clear_reply_and_no_job(tg, tg_settings, samples):
    alice = tg.user()
    chat = tg.private_chat(alice)
    limit = tg_settings.limits.max_audio_seconds
    async with running_bot(tg_settings):
        photo = tg.send(chat, alice, photo=samples["photo"])
        too_long = tg.send(chat, alice, voice=samples["voice"], voice_duration=int(limit) + 30, reply_to=photo)
        reply = await tg.wait_for("sendMessage", _replies_to(too_long))
        assert reply.params["text"] == messages.audio_too_long(limit + 30, limit)

        text = tg.send(chat, alice, text="look at this")
        not_a_photo = tg.send(chat, alice, voice=samples["voice"], reply_to=text)
        reply = await tg.wait_for("sendMessage", _replies_to(not_a_photo))
        assert reply.params["text"] == messages.TELEGRAM_REPLY_TO_A_PHOTO

        corrupt = tg.send(chat, alice, voice=samples["corrupt_voice"], reply_to=photo)
        reply = await tg.wait_for("sendMessage", _replies_to(corrupt))
        assert reply.params["text"] == messages.TELEGRAM_CHECKING
        refusal = await tg.wait_for("editMessageText", _edits(reply))  # the answer turns into the refusal
        assert refusal.params["text"] == messages.CORRUPT_AUDIO
    assert _jobs(tg_settings, tg) == []
    # The too-long note was refused from its declared duration, before any download.
    voice_paths = [p for p in tg.download_requests if p.startswith("voice/")]
    assert len(voice_paths) == 1  # only the corrupt one was fetched (and the photo)
    assert not tg.calls_to("sendVideo")


async def test_voice_reply_to_someone_elses_text_in_a_group_is_ignored(tg, tg_settings, samples):
    alice, bob = tg.user(1, "Alice"), tg.user(2, "Bob")
    chat = tg.group()
    async with running_bot(tg_settings):
        text = tg.send(chat, bob, text="how are you?")
        tg.send(chat, alice, voice=samples["voice"], reply_to=text)
        marker = tg.send(chat, alice, text="/help")
        await tg.wait_for("sendMessage", _replies_to(marker))
    assert [c.params["reply_parameters"]["message_id"] for c in tg.calls_to("sendMessage")] == [marker["message_id"]]


# --- restart and exactly-once ---------------------------------------------------------------------
async def test_bot_restarted_between_render_and_delivery_delivers_exactly_once(
    tg, tg_settings, samples, engine_slowdown
):
    engine_slowdown(0.1)  # the render outlives the first bot process
    alice = tg.user()
    chat = tg.group(forum=True)
    topic = tg.topic(chat)
    store = JobStore.from_settings(tg_settings)
    async with running_bot(tg_settings):
        photo = tg.send(chat, alice, photo=samples["photo"], topic=topic)
        voice = tg.send(chat, alice, voice=samples["voice"], reply_to=photo, topic=topic)
        await tg.wait_for("sendMessage", _replies_to(voice))
    # The bot is down; the worker finishes the render meanwhile.
    [job] = _jobs(tg_settings, tg)
    for _ in range(CLIP_WAIT_S * 4):
        if store.get(job.id).state == "done":
            break
        await asyncio.sleep(0.25)
    assert store.get(job.id).state == "done" and not tg.calls_to("sendVideo")

    async with running_bot(tg_settings), running_bot(tg_settings):  # two processes racing, even
        clip = await _wait_clip(tg, voice)
        await asyncio.sleep(3)  # room for a wrong second post
    assert len(tg.calls_to("sendVideo")) == 1
    assert clip.params["message_thread_id"] == topic["message_id"]
    assert store.get(job.id).state == "delivered"
    async with running_bot(tg_settings):  # and a third start posts nothing either
        await asyncio.sleep(2)
    assert len(tg.calls_to("sendVideo")) == 1


# --- commands ------------------------------------------------------------------------------------
async def test_help_start_voices_and_settings(tg, tg_settings, samples, engine_slowdown):
    engine_slowdown(0.3)  # time for /status and /cancel while the job is still going
    alice, bob = tg.user(1, "Alice"), tg.user(2, "Bob")
    chat = tg.group()
    tg.make_admin(chat, alice)
    async with running_bot(tg_settings):
        answers = {}
        for text in ("/start", "/help", "/voices"):
            command = tg.send(chat, alice, text=text)
            answers[text] = (await tg.wait_for("sendMessage", _replies_to(command))).params["text"]
        assert answers["/start"] == messages.TELEGRAM_START
        menus = {call.params.get("language_code"): call.params["commands"] for call in tg.calls_to("setMyCommands")}
        assert set(menus) == {None, "zh", "es"}  # English for everyone, and one menu per other language
        for code, lang in ((None, "en"), ("zh", "zh-Hans"), ("es", "es")):
            assert [(c["command"], c["description"]) for c in menus[code]] == list(
                messages.telegram_commands(lang).items()
            )
        assert "privacy" in answers["/help"] and "/setprivacy" in answers["/help"]
        assert "en-female" in answers["/voices"] and "de-male" in answers["/voices"]

        refused = tg.send(chat, bob, text="/settings captions on")
        reply = await tg.wait_for("sendMessage", _replies_to(refused))
        assert reply.params["text"] == messages.TELEGRAM_SETTINGS_ADMINS_ONLY
        for text in ("/settings captions on", "/settings clipcaption off", "/settings voice de-male",
                     "/settings quality fast"):  # fmt: skip
            command = tg.send(chat, alice, text=text)
            reply = await tg.wait_for("sendMessage", _replies_to(command))
            assert reply.params["text"] == messages.SETTINGS_SAVED
        bad = tg.send(chat, alice, text="/settings voice klingon")
        reply = await tg.wait_for("sendMessage", _replies_to(bad))
        assert "klingon" in reply.params["text"]

        # Two switches, two names: plain captions are requests now; the clip comes without the text.
        config = ChatConfigStore(JobStore.from_settings(tg_settings).redis).get_sync("telegram", chat["id"])
        assert (config.caption_requests, config.clip_captions) == (True, False)
        shown = tg.send(chat, bob, text="/settings")
        reply = await tg.wait_for("sendMessage", _replies_to(shown))
        assert reply.params["text"] == messages.telegram_settings("de-male", "fast", True, False)

        # Plain captions now count, spoken with the chat's voice and quality.
        captioned = tg.send(chat, bob, photo=samples["photo"], caption="Guten Tag")
        answer = await tg.wait_for("sendMessage", _replies_to(captioned))
        await tg.wait_for("editMessageText", _edits(answer))  # it became the job's status message
        [job] = _jobs(tg_settings, tg)
        assert (job.options.text, job.options.voice_name, job.options.quality) == ("Guten Tag", "de-male", "fast")

        status = tg.send(chat, bob, text="/status")
        reply = await tg.wait_for("sendMessage", _replies_to(status))
        assert reply.params["text"] != messages.TELEGRAM_NOTHING_TO_CANCEL
        cancel = tg.send(chat, bob, text="/cancel")
        reply = await tg.wait_for("sendMessage", _replies_to(cancel))
        assert reply.params["text"] == messages.CANCELLING
        # The status message ends saying so, and no clip is posted.
        await tg.wait_for("editMessageText", lambda c: c.params["text"] == messages.CANCELLED, timeout=CLIP_WAIT_S)
    assert not tg.calls_to("sendVideo")
    assert _jobs(tg_settings, tg)[0].state == "cancelled"


# --- resilience ----------------------------------------------------------------------------------
async def test_server_errors_and_flood_limits_are_survived(tg, tg_settings, samples):
    alice = tg.user()
    chat = tg.private_chat(alice)
    tg.fail("getMe", 502, times=2)  # the bot starts before the Bot API is reachable
    tg.fail("getUpdates", 502, times=2)
    tg.fail("sendMessage", 429, retry_after=1)
    tg.fail("sendVideo", 500)
    tg.fail("sendVideo", 0)
    async with running_bot(tg_settings):
        photo = tg.send(chat, alice, photo=samples["photo"], caption="/animate Still here")
        clip = await _wait_clip(tg, photo)
    assert [c.status for c in tg.calls if c.method == "getMe"][:3] == [502, 502, 200]
    assert [c.status for c in tg.calls if c.method == "getUpdates"][:3] == [502, 502, 200]
    statuses = [c.status for c in tg.calls if c.method == "sendVideo"]
    assert statuses == [500, 0, 200]
    assert [c.status for c in tg.calls if c.method == "sendMessage"][:2] == [429, 200]
    assert probe_mp4(clip.file("video").data)["duration"] > 0.3


async def test_a_bad_update_does_not_stop_the_bot(tg, tg_settings):
    alice = tg.user()
    chat = tg.private_chat(alice)
    async with running_bot(tg_settings):
        tg._push(
            {
                "message": {
                    "message_id": 5,
                    "date": 0,
                    "chat": chat,
                    "from": alice,
                    "photo": [{"file_id": "missing", "file_unique_id": "m", "width": 9, "height": 9}],
                    "caption": "/animate hi",
                    "caption_entities": [{"type": "bot_command", "offset": 0, "length": 8}],
                }
            }
        )
        tg._push({"callback_query": {"id": "q1", "from": alice, "chat_instance": "x", "data": "a:nope"}})
        bad_photo = {"message_id": 5}
        answer = await tg.wait_for("sendMessage", _replies_to(bad_photo))
        apology = await tg.wait_for("editMessageText", _edits(answer))
        assert apology.params["text"] == messages.DOWNLOAD_FAILED  # getFile refused the unknown file
        await tg.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == "q1")
        after = tg.send(chat, alice, text="/start")
        await tg.wait_for("sendMessage", _replies_to(after))


async def test_the_token_never_reaches_the_log(tg, tg_settings, samples, caplog):
    caplog.set_level(logging.DEBUG)
    alice = tg.user()
    chat = tg.private_chat(alice)
    async with running_bot(tg_settings):
        tg.send(chat, alice, photo=samples["photo"])
        await tg.wait_for("sendMessage")
    assert "getUpdates" in caplog.text or "getMe" in caplog.text  # PTB/httpx did log URLs
    assert TOKEN not in caplog.text
    assert TOKEN.split(":")[1] not in caplog.text


# --- progress, limits, fallbacks -----------------------------------------------------------------
async def test_progress_edits_respect_the_group_flood_limit(tg, tg_settings, samples, engine_slowdown):
    from avatarbot.bots.telegram.surface import GROUP_EDIT_INTERVAL_S

    engine_slowdown(0.25)
    alice = tg.user()
    chat = tg.group()
    async with running_bot(tg_settings):
        photo = tg.send(chat, alice, photo=samples["photo"])
        voice = tg.send(chat, alice, voice=samples["voice"], reply_to=photo)
        status = await tg.wait_for("sendMessage", _replies_to(voice))
        progress = await tg.wait_for(
            "editMessageText", lambda c: "▰" in c.params["text"] or "▱" in c.params["text"], timeout=CLIP_WAIT_S
        )
        await _wait_clip(tg, voice)
    assert progress.params["message_id"] == status.result["message_id"]
    assert progress.params["text"].split()[0] in {"Preparing", "Rendering", "Encoding"}
    edits = [c for c in tg.calls if c.method == "editMessageText" and c.params["chat_id"] == chat["id"]]
    # "sending video…" shows while it renders (chat actions last 5 s, so they repeat).
    actions = [c for c in tg.calls_to("sendChatAction") if c.at < edits[-1].at]
    assert actions and all(c.params["action"] == "upload_video" for c in actions)
    gaps = [b.at - a.at for a, b in itertools.pairwise(edits)]
    assert all(gap >= GROUP_EDIT_INTERVAL_S - 0.05 for gap in gaps), gaps


async def test_clip_fits_a_small_upload_limit_and_falls_back_to_a_document(tg, settings, render_worker, samples):
    limit = 60_000
    telegram = TelegramSettings(
        token=TOKEN, base_url=tg.base_url, base_file_url=tg.base_file_url, upload_limit_bytes=limit
    )
    small = settings.model_copy(update={"telegram": telegram})
    alice = tg.user()
    chat = tg.private_chat(alice)
    tg.fail("sendVideo", 400, description="Bad Request: wrong type of the web page content")
    async with running_bot(small):
        photo = tg.send(chat, alice, photo=samples["photo"], caption="/animate Small but mine")
        document = await tg.wait_for("sendDocument", _replies_to(photo), timeout=CLIP_WAIT_S)
    data = document.file("document").data
    assert len(data) <= limit
    assert [c.split(":")[0] for c in probe_mp4(data)["codecs"]] == ["audio", "video"]
    assert document.params["reply_markup"]["inline_keyboard"][0][0]["text"] == messages.BUTTON_AGAIN
    [job] = _jobs(small, tg)
    assert job.delivery["as"] == "document"


async def test_self_hosted_bot_api_in_local_mode(tmp_path, settings, render_worker, samples):
    server = FakeTelegram(local_dir=tmp_path / "telegram-bot-api")
    await server.start()
    try:
        telegram = TelegramSettings(
            token=TOKEN, base_url=server.base_url, base_file_url=server.base_file_url, local_mode=True
        )
        local = settings.model_copy(update={"telegram": telegram})
        alice = server.user()
        chat = server.private_chat(alice)
        async with running_bot(local):
            photo = server.send(chat, alice, photo=samples["photo"])
            voice = server.send(chat, alice, voice=samples["voice"], reply_to=photo)
            clip = await _wait_clip(server, voice)
        assert server.download_requests == []  # files were read from the server's directory
        assert probe_mp4(clip.file("video").data)["duration"] == pytest.approx(samples["voice_seconds"], abs=0.3)
    finally:
        await server.stop()


async def test_a_chat_that_refuses_the_post_is_not_retried_forever(tg, tg_settings, samples):
    alice = tg.user()
    chat = tg.private_chat(alice)
    tg.fail("sendVideo", 403, description="Forbidden: bot was blocked by the user")
    async with running_bot(tg_settings):
        photo = tg.send(chat, alice, photo=samples["photo"], caption="/animate Bye")
        answer = await tg.wait_for("sendMessage", _replies_to(photo))
        await tg.wait_for("editMessageText", _edits(answer))  # the job exists
        for _ in range(CLIP_WAIT_S * 4):
            [job] = _jobs(tg_settings, tg)
            if job.delivered:
                break
            await asyncio.sleep(0.25)
    assert "blocked" in job.delivery["undeliverable"]
    assert [c.status for c in tg.calls if c.method in ("sendVideo", "sendDocument")] == [403]


# --- the real command ----------------------------------------------------------------------------
async def test_avatarbot_telegram_command_runs_stops_and_never_logs_the_token(tg, tg_settings):
    import os
    import signal
    import sys

    env = {
        **os.environ,
        "AVATARBOT_TELEGRAM__TOKEN": TOKEN,
        "AVATARBOT_TELEGRAM__BASE_URL": tg.base_url,
        "AVATARBOT_TELEGRAM__BASE_FILE_URL": tg.base_file_url,
        "AVATARBOT_REDIS__URL": tg_settings.redis.url,
        "AVATARBOT_DATA_DIR": str(tg_settings.data_dir),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "avatarbot",
        "-v",
        "telegram",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await tg.wait_for("getUpdates", timeout=60)
        alice = tg.user()
        start = tg.send(tg.private_chat(alice), alice, text="/start")
        reply = await tg.wait_for("sendMessage", _replies_to(start), timeout=30)
        assert reply.params["text"] == messages.TELEGRAM_START
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    log_text = output.decode(errors="replace")
    assert process.returncode == 0, log_text[-2000:]
    assert "DEBUG" in log_text and "<telegram-token>" in log_text  # PTB did log its URLs...
    assert TOKEN not in log_text and TOKEN.split(":")[1] not in log_text  # ...scrubbed


def test_avatarbot_telegram_without_a_token_says_so(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARBOT_")}
    result = subprocess.run(
        [sys.executable, "-m", "avatarbot", "telegram"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert "telegram.token" in result.stderr


async def test_only_allowed_chats_and_bot_admins_are_answered(tg, settings, render_worker):
    alice, admin = tg.user(1, "Alice"), tg.user(2, "Root")
    allowed, other = tg.group(1), tg.group(2)
    telegram = TelegramSettings(
        token=TOKEN,
        base_url=tg.base_url,
        base_file_url=tg.base_file_url,
        allowed_chats=[allowed["id"]],
        admins=[admin["id"]],
    )
    gated = settings.model_copy(update={"telegram": telegram})
    async with running_bot(gated):
        tg.send(other, alice, text="/start")
        tg.send(tg.private_chat(alice), alice, text="/start")
        from_admin = tg.send(tg.private_chat(admin), admin, text="/start")
        in_allowed = tg.send(allowed, alice, text="/start")
        await tg.wait_for("sendMessage", _replies_to(in_allowed))
        await tg.wait_for("sendMessage", _replies_to(from_admin))
        await asyncio.sleep(1)
    assert sorted(c.params["chat_id"] for c in tg.calls_to("sendMessage")) == sorted([allowed["id"], admin["id"]])


async def test_cancel_button_under_the_status_message(tg, tg_settings, samples, engine_slowdown):
    engine_slowdown(0.3)
    alice, bob = tg.user(1, "Alice"), tg.user(2, "Bob")
    chat = tg.group()
    async with running_bot(tg_settings):
        photo = tg.send(chat, alice, photo=samples["photo"])
        voice = tg.send(chat, alice, voice=samples["voice"], reply_to=photo)
        status = await tg.wait_for("sendMessage", _replies_to(voice))
        shown = await tg.wait_for("editMessageText", _edits(status))  # "Queued": now with a Cancel button
        cancel_data = shown.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        query = tg.press(status.result, bob, cancel_data)
        answer = await tg.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query)
        assert answer.params["text"] == messages.NOT_YOURS
        query = tg.press(status.result, alice, cancel_data)
        answer = await tg.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query)
        assert answer.params["text"] == messages.CANCELLING
        final = await tg.wait_for(
            "editMessageText", lambda c: c.params["text"] == messages.CANCELLED, timeout=CLIP_WAIT_S
        )
    assert final.params["message_id"] == status.result["message_id"]
    assert "reply_markup" not in final.params  # no Cancel button left on a finished job
    [job] = _jobs(tg_settings, tg)
    assert job.state == "cancelled" and job.delivered
    assert not tg.calls_to("sendVideo")


async def test_the_same_request_twice_renders_once_and_the_second_answer_says_so(tg, tg_settings, samples,
                                                                                 engine_slowdown):  # fmt: skip
    engine_slowdown(0.2)
    alice = tg.user()
    chat = tg.private_chat(alice)
    async with running_bot(tg_settings):
        photo = tg.send(chat, alice, photo=samples["photo"])
        first = tg.send(chat, alice, voice=samples["voice"], voice_duration=2, reply_to=photo)
        first_answer = await tg.wait_for("sendMessage", _replies_to(first))
        await tg.wait_for("editMessageText", _edits(first_answer))  # its job exists
        again = tg.send(chat, alice, voice=samples["voice"], voice_duration=2, reply_to=photo)
        answer = await tg.wait_for("sendMessage", _replies_to(again))
        said = await tg.wait_for("editMessageText", _edits(answer))
        assert said.params["text"] == messages.ALREADY_ASKED
        await _wait_clip(tg, first)
    assert len(_jobs(tg_settings, tg)) == 1
    assert len(tg.calls_to("sendVideo")) == 1
