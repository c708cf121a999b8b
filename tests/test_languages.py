"""Replies in the user's language, end to end: the real bots against their fake servers, the real
flow on the real Redis, the real Celery worker rendering with the lite engine.

A Telegram user whose app says `language_code` "zh-hans" and a Discord member whose client sends
locale "zh-CN" get every answer in Simplified Chinese: the acknowledgement, the status line, the
buttons, the clip's caption, a refusal, the answer to a button press; the commands themselves are
registered in each shipped language. A chat admin's language setting overrides the person's own.
"""

from __future__ import annotations

import pytest

from avatarbot import messages
from avatarbot.errors import AudioTooLongError
from tests.chat_sides import clips_replying, said, until

pytestmark = pytest.mark.timeout(300)

ZH = "zh-Hans"
ZH_STATUS_WORDS = ("排队中", "准备中", "生成中", "编码中", "已完成")


def zh(key: str, **params) -> str:
    return messages.text(key, ZH, **params)


@pytest.mark.parametrize("make_side", ["telegram"], indirect=True)
async def test_a_telegram_user_with_language_code_zh_hans_gets_chinese_replies(make_side, samples):
    async with make_side() as side, side.running():
        fake = side.fake
        li = fake.user(1, "李雷", language_code="zh-hans")
        photo = await side.photo(li)
        request = await side.request(li, photo)
        [clip] = await until(lambda: clips_replying(side, request), "the clip")
        [job] = side.jobs()
        assert job.requester.language == ZH
        # The acknowledgement, then the status it was edited into, all in Chinese.
        [ack] = [c for c in fake.calls_to("sendMessage") if c.params.get("reply_parameters", {}).get("message_id")
                 == request["message_id"]]  # fmt: skip
        assert ack.params["text"] == zh("telegram_checking")
        edits = [c.params["text"] for c in fake.calls_to("editMessageText")]
        assert edits and all(any(word in text for word in ZH_STATUS_WORDS) for text in edits), edits
        labels = [button["text"] for row in clip["reply_markup"]["inline_keyboard"] for button in row]
        assert labels == [zh("button_again"), zh("button_delete")]

        # A refusal (a damaged recording) and a command, in Chinese too.
        bad = fake.send(side.chat, li, voice=samples["corrupt_voice"], reply_to=photo)
        await until(lambda: zh("corrupt_audio") in said(side, bad), "the refusal in Chinese")
        help_request = fake.send(side.chat, li, text="/help")
        await until(lambda: any(t.startswith("使用方法：") for t in said(side, help_request)), "/help in Chinese")
        # The press on the clip's Delete button is answered in Chinese.
        assert await side.press(li, clip, side.buttons(clip)["delete"]) == zh("deleted")

        # The menus: English for everyone, Chinese for Chinese apps.
        menus = {c.params.get("language_code"): c.params["commands"] for c in fake.calls_to("setMyCommands")}
        assert {c["command"]: c["description"] for c in menus["zh"]} == messages.telegram_commands(ZH)

        # An English user in the same chat is answered in English, until an admin sets the chat's language.
        amy = fake.user(2, "Amy")
        start = fake.send(side.chat, amy, text="/start")
        await until(lambda: messages.text("telegram_start") in said(side, start), "/start in English")
        side.make_moderator(amy)
        setting = fake.send(side.chat, amy, text="/settings language es")
        await until(lambda: messages.text("settings_saved", "es") in said(side, setting), "saved, in Spanish")
        again = fake.send(side.chat, li, text="/start")
        await until(lambda: messages.text("telegram_start", "es") in said(side, again), "/start in Spanish")


def _labels(message: dict) -> list[str]:
    return [c["label"] for row in message.get("components", []) for c in row.get("components", [])]


@pytest.mark.parametrize("make_side", ["discord"], indirect=True)
async def test_a_discord_interaction_with_locale_zh_cn_gets_chinese_replies(make_side, samples):
    async with make_side() as side, side.running():
        fake = side.fake
        member = fake.add_user("lilei")
        photo = fake.add_attachment(samples["photo"], "face.jpg", "image/jpeg", width=256, height=256)
        voice = fake.add_attachment(samples["voice"], "voice.ogg", "audio/ogg")
        asked = await fake.slash_command(
            member, "animate", {}, attachments={"photo": photo, "voice": voice}, locale="zh-CN"
        )
        await until(lambda: asked.followups, "the answer to /animate")
        assert asked.followups[0]["content"] == zh("started")
        [clip] = await until(lambda: [m for m in fake.bot_messages() if m["attachments"]], "the clip")
        [job] = side.jobs()
        assert job.requester.language == ZH
        assert clip["content"].startswith(zh("discord_clip_caption", who=f"<@{member.id}>"))
        assert _labels(clip) == [zh("button_again"), zh("button_delete")]
        done = messages.discord_status(f"<@{member.id}>", zh("done"), ZH)
        await until(lambda: side.status_message(job)["content"] == done, "the status message ending in Chinese")

        # A refusal before any download, in Chinese.
        photo_only = fake.add_attachment(samples["photo"], "face2.jpg", "image/jpeg", width=256, height=256)
        refused = await fake.slash_command(member, "animate", {}, attachments={"photo": photo_only}, locale="zh-CN")
        await until(lambda: refused.callback, "the refusal")
        assert refused.callback["data"]["content"] == zh("discord_need_voice_or_text")
        # A press, answered in the presser's language.
        press = await fake.click(member, clip, side.buttons(clip)["delete"], locale="zh-CN")
        await until(lambda: press.callback, "the press's answer")
        assert (press.callback.get("data") or {}).get("content") == zh("deleted")

        # Command names and descriptions were registered in every shipped language.
        commands = {c["name"]: c for c in fake.commands[fake.guild_id]}
        animate = commands["animate"]
        assert animate["name_localizations"]["zh-CN"] == zh("name_animate")
        assert animate["name_localizations"]["es-ES"] == animate["name_localizations"]["es-419"] == "animar"
        assert animate["description_localizations"]["zh-CN"] == zh("describe_animate")
        assert animate["description_localizations"]["zh-TW"] == zh("describe_animate")  # no zh-Hant: Simplified
        options = {option["name"]: option for option in animate["options"]}
        assert options["photo"]["description_localizations"]["zh-CN"] == zh("describe_photo")
        assert commands["avatar-settings"]["name_localizations"]["zh-CN"] == zh("name_settings")
        assert commands["help"]["description_localizations"]["es-ES"] == messages.text("describe_help", "es")


@pytest.mark.parametrize("make_side", ["discord"], indirect=True)
async def test_a_discord_voice_reply_follows_the_server_language_and_its_admins_setting(make_side):
    async with make_side() as side:
        side.fake.preferred_locale = "zh-CN"  # outside interactions, the server's language is all we know
        async with side.running():
            member = side.user(1, "lilei")
            photo = await side.photo(member)
            request = await side.request(member, photo)
            [clip] = await until(lambda: clips_replying(side, request), "the clip")
            assert _labels(clip) == [zh("button_again"), zh("button_delete")]
            [job] = side.jobs()
            assert job.requester.language == ZH
            # An admin sets the server's language: every member's answers follow it.
            admin = side.user(2, "admin")
            side.make_moderator(admin)
            setting = await side.fake.slash_command(
                admin, "avatar-settings", {"language": "es"}, subcommand="language", locale="en-US"
            )
            await until(lambda: setting.callback, "the settings answer")
            assert setting.callback["data"]["content"].startswith(messages.text("settings_saved", "es"))
            repeat = await side.request(member, photo)
            await until(lambda: messages.text("clip_again", "es") in said(side, repeat), "the repeat, in Spanish")


@pytest.mark.parametrize("make_side", ["telegram"], indirect=True)
async def test_a_failure_on_the_worker_reaches_the_user_in_their_language(make_side, base_settings):
    """The worker says a failure in English and stores its code and numbers; the bot says it again
    in the job's language (through the job record in Redis, across the Celery worker)."""
    from avatarbot.tasks import render_job

    class Refusing:
        name = "refusing"

        def render(self, *args, **kwargs):
            raise AudioTooLongError(messages.audio_too_long(90, 60), detail="a worker-side refusal")

    lite = render_job.engine_for("lite", base_settings)
    render_job.install_engine("lite", Refusing())
    try:
        async with make_side() as side, side.running():
            li = side.fake.user(1, "李雷", language_code="zh-hans")
            photo = await side.photo(li)
            request = await side.request(li, photo)
            expected = zh("audio_too_long", seconds=90, limit_seconds=60)
            await until(lambda: expected in said(side, request), "the failure in Chinese")
            [job] = side.jobs()
            assert job.user_message == messages.audio_too_long(90, 60)  # the record keeps the English
            assert (job.error_code, job.error_params) == (
                "audio_too_long",
                {"seconds": 90, "limit_seconds": 60, "key": "audio_too_long"},
            )
    finally:
        render_job.install_engine("lite", lite)
