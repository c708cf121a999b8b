"""Issue 7, the security half: where attachments come from, how much of them is read, what is left
on disk, and where the bot tokens end up.

1. Downloads: a Discord attachment is fetched only from Discord's CDN (or a host the operator
   named); any other URL is refused before a single byte goes out, which a local "trap" server
   proves by counting the TCP connections it receives. A server that streams more than it
   declared (or a gzip bomb) is cut off at the byte cap: the trap counts what it managed to send.
   Telegram downloads go through getFile on the configured Bot API only, under the same cap.
2. Temporary files: with the temp directory pointed at a fresh folder, a full request cycle
   (submit, render, clip_for_upload, delivery) and failing ones leave that folder empty.
3. Tokens: both bots run end to end against their fake servers with a distinctive token and
   DEBUG logging, through a success and an error path; the token is then looked for in every log
   record (message, arguments, traceback), everything the fake servers received except the
   authentication itself, every exception, and every key and value in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Self
from urllib.parse import urlsplit

import aiohttp
import discord
import pytest
import redis
from pydantic import SecretStr

from avatarbot import errors, messages
from avatarbot.bots.discord import attachments
from avatarbot.service.flow import RenderRequest, ReplyTarget, Requester, RequestFlow
from avatarbot.settings import Settings
from avatarbot.tasks import keys
from tests.conftest import wait_for_job, with_overrides
from tests.fake_discord import FakeDiscord

pytestmark = pytest.mark.timeout(180)

CAP = 256 * 1024  # the download cap the streaming tests use
TRAP_STREAM_BYTES = 64 * 1024 * 1024  # what an endless server offers: far more than the cap
# What a trap may have pushed out before the client hung up: the cap plus socket buffers.
STREAM_SLACK_BYTES = 16 * 1024 * 1024
CLIP_WAIT_S = 120


# --- a trap server -------------------------------------------------------------------------------
class Trap:
    """A TCP server on 127.0.0.1 that records every connection before reading a byte, then
    answers like an HTTP server in one of these ways:

    - "small": 200 with a few bytes;
    - "endless": 200 without a length, streaming until the client hangs up (or TRAP_STREAM_BYTES);
    - "gzip-bomb": 200, `Content-Encoding: gzip`, 64 MiB of zeros compressed to ~64 KiB;
    - "redirect": 302 to `location`.
    """

    def __init__(self, mode: str = "small", location: str = ""):
        self.mode = mode
        self.location = location
        self.connections = 0
        self.request_lines: list[str] = []
        self.bytes_sent = 0
        self.client_hung_up = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            self.request_lines.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            await self._answer(writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            self.client_hung_up.set()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, writer: asyncio.StreamWriter) -> None:
        if self.mode == "redirect":
            writer.write(f"HTTP/1.1 302 Found\r\nLocation: {self.location}\r\nContent-Length: 0\r\n\r\n".encode())
        elif self.mode == "small":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 4\r\n\r\nPNG!")
        elif self.mode == "gzip-bomb":
            body = gzip.compress(bytes(TRAP_STREAM_BYTES), compresslevel=9)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: audio/ogg\r\nContent-Encoding: gzip\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            self.bytes_sent += len(body)
        else:  # endless: no length, the body ends when the connection does
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: audio/ogg\r\nConnection: close\r\n\r\n")
            chunk = bytes(64 * 1024)
            while self.bytes_sent < TRAP_STREAM_BYTES:
                writer.write(chunk)
                await writer.drain()  # raises once the client has hung up
                self.bytes_sent += len(chunk)
        await writer.drain()


def _discord_attachment(url: str, *, size: int = 1000, filename: str = "face.png") -> discord.Attachment:
    data = {"id": "1", "filename": filename, "size": size, "url": url, "proxy_url": url, "content_type": "image/png"}
    return discord.Attachment(data=data, state=SimpleNamespace(http=None))


# --- 1. where downloads come from, and how much is read -------------------------------------------
def _user_chosen_urls(port: int) -> list[str]:
    """URLs a user could slip into an attachment object, all aimed at the trap on 127.0.0.1."""
    return [
        f"http://127.0.0.1:{port}/evil.png",
        f"https://127.0.0.1:{port}/evil.png",
        f"http://localhost:{port}/evil.png",
        f"https://cdn.discordapp.com@127.0.0.1:{port}/x.png",  # CDN as user info, trap as host
        f"https://cdn.discordapp.com:443@127.0.0.1:{port}/x.png",
        f"https://127.0.0.1:{port}#@cdn.discordapp.com/x.png",
        f"https://127.0.0.1:{port}?@cdn.discordapp.com/x.png",
        f"https://127.0.0.1:{port}\\@cdn.discordapp.com/x.png",  # parsers disagree on backslashes
        f"https://cdn.discordapp.com.127.0.0.1.nip.io:{port}/x.png",
        f"//127.0.0.1:{port}/x.png",
        "https://example.com/x.png",
        "file:///etc/passwd",
    ]


async def test_discord_refuses_any_host_but_its_cdn_without_making_a_request():
    async with Trap() as trap, aiohttp.ClientSession() as session:
        for url in _user_chosen_urls(trap.port):
            with pytest.raises(errors.InputError) as refused:
                await attachments.download(_discord_attachment(url), Settings(), session)
            assert refused.value.user_message == messages.DOWNLOAD_FAILED, url
        # An operator-named host is fetched from, but nothing else on the same machine is, and a
        # URL with user info in it is a trick even when its host is the named one.
        named = Settings(discord={"cdn_hosts": ["127.0.0.1"]})
        for url in _user_chosen_urls(trap.port):
            parts = urlsplit(url)
            if parts.hostname == "127.0.0.1" and "@" not in parts.netloc:
                continue  # the named host itself
            with pytest.raises(errors.InputError):
                await attachments.download(_discord_attachment(url), named, session)
        for url in (
            f"http://cdn.discordapp.com@127.0.0.1:{trap.port}/x.png",
            f"http://u:p@127.0.0.1:{trap.port}/x.png",
        ):
            with pytest.raises(errors.InputError):
                await attachments.download(_discord_attachment(url), named, session)
        assert trap.connections == 0, trap.request_lines
        # The trap does answer when asked (so "0 connections" above means something).
        assert await attachments.download(_discord_attachment(f"{trap.base}/ok.png"), named, session) == b"PNG!"
        assert trap.connections == 1


async def test_discord_does_not_follow_a_redirect_off_the_cdn():
    async with Trap() as elsewhere, Trap("redirect") as cdn, aiohttp.ClientSession() as session:
        cdn.location = f"http://localhost:{elsewhere.port}/evil.png"
        settings = Settings(discord={"cdn_hosts": ["127.0.0.1"]})
        with pytest.raises(errors.InputError) as refused:
            await attachments.download(_discord_attachment(f"{cdn.base}/a.png"), settings, session)
        assert refused.value.user_message == messages.DOWNLOAD_FAILED
        assert cdn.connections == 1 and elsewhere.connections == 0


@pytest.mark.parametrize("mode", ["endless", "gzip-bomb"])
async def test_discord_download_is_cut_at_the_cap(mode):
    settings = Settings(discord={"cdn_hosts": ["127.0.0.1"]}, limits={"max_download_bytes": CAP})
    async with Trap(mode) as cdn, aiohttp.ClientSession() as session:
        attachment = _discord_attachment(f"{cdn.base}/voice.ogg", size=1000, filename="voice.ogg")  # declares 1 kB
        started = time.monotonic()
        with pytest.raises(errors.FileTooBigError) as refused:
            await attachments.download(attachment, settings, session)
        assert refused.value.user_message == messages.file_too_big(CAP)
        if mode == "endless":
            await asyncio.wait_for(cdn.client_hung_up.wait(), 10)
            assert cdn.bytes_sent < CAP + STREAM_SLACK_BYTES < TRAP_STREAM_BYTES
    assert time.monotonic() - started < 30


async def test_a_user_supplied_discord_attachment_url_is_refused_by_the_running_bot(
    settings, restore_endpoints, photo_bytes, voice_bytes
):
    """The same through discord.py: /animate whose photo attachment points at the trap."""
    async with Trap() as trap, started_fake() as fake:
        config = discord_settings(settings, fake)
        async with running_discord_bot(config, fake):
            user = fake.add_user("mallory")
            photo = fake.add_attachment(photo_bytes, "face.png", "image/png")
            photo["url"] = photo["proxy_url"] = f"http://localhost:{trap.port}/face.png"
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            interaction = await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})
            await fake.wait_for(lambda: _interaction_texts(interaction), 20, "the refusal")
        assert messages.DOWNLOAD_FAILED in _interaction_texts(interaction)
        assert trap.connections == 0
        assert _jobs_of(config, "discord", user.id) == []


@pytest.fixture
async def telegram_fake():
    from tests.fake_telegram import FakeTelegram

    server = FakeTelegram(token=TELEGRAM_TOKEN)
    await server.start()
    yield server
    await server.stop()


def _telegram_settings(fake, *, base_file_url: str | None = None, **limits) -> Settings:
    return Settings(
        limits=limits,
        telegram={
            "token": TELEGRAM_TOKEN,
            "base_url": fake.base_url,
            "base_file_url": base_file_url or fake.base_file_url,
        },
    )


async def test_telegram_downloads_only_through_getfile_on_its_own_server(telegram_fake):
    """A file_path is the only URL-like thing Telegram hands the bot; even one that names another
    host is fetched from the configured file server."""
    from telegram import Bot

    from avatarbot.bots.telegram import files
    from avatarbot.bots.telegram.requests import Attachment

    async with Trap() as trap:
        settings = _telegram_settings(telegram_fake)
        file_id, _ = telegram_fake.add_file(b"OggS" + bytes(100), "voice", "oga")
        _, data = telegram_fake.files[file_id]
        telegram_fake.files[file_id] = (f"http://127.0.0.1:{trap.port}/evil.oga", data)
        async with Bot(TELEGRAM_TOKEN, base_url=settings.telegram.base_url,
                       base_file_url=settings.telegram.base_file_url) as bot:  # fmt: skip
            with contextlib.suppress(Exception):  # served or refused by the fake: either is fine here
                await files.fetch(bot, Attachment(file_id, len(data), "voice"), settings)
        assert trap.connections == 0
        assert telegram_fake.download_requests  # the download went to the configured file server


async def test_telegram_does_not_follow_a_redirect_off_its_file_server(telegram_fake):
    from telegram import Bot

    from avatarbot.bots.telegram import files
    from avatarbot.bots.telegram.requests import Attachment

    async with Trap() as elsewhere, Trap("redirect") as file_server:
        file_server.location = f"http://localhost:{elsewhere.port}/evil.oga"
        settings = _telegram_settings(telegram_fake, base_file_url=f"{file_server.base}/file/bot")
        file_id, _ = telegram_fake.add_file(b"OggS" + bytes(100), "voice", "oga")
        async with Bot(TELEGRAM_TOKEN, base_url=settings.telegram.base_url,
                       base_file_url=settings.telegram.base_file_url) as bot:  # fmt: skip
            with pytest.raises(Exception) as failed:
                await files.fetch(bot, Attachment(file_id, 104, "voice"), settings)
        assert file_server.connections == 1 and elsewhere.connections == 0
        assert TELEGRAM_TOKEN not in "".join(traceback.format_exception(failed.value))


@pytest.mark.parametrize("mode", ["endless", "gzip-bomb"])
async def test_telegram_download_is_cut_at_the_cap(telegram_fake, mode):
    from telegram import Bot

    from avatarbot.bots.telegram import files
    from avatarbot.bots.telegram.requests import Attachment

    async with Trap(mode) as file_server:
        settings = _telegram_settings(
            telegram_fake, base_file_url=f"{file_server.base}/file/bot", max_download_bytes=CAP
        )
        file_id, _ = telegram_fake.add_file(bytes(1000), "voice", "oga")  # getFile declares 1000 bytes
        async with Bot(TELEGRAM_TOKEN, base_url=settings.telegram.base_url,
                       base_file_url=settings.telegram.base_file_url) as bot:  # fmt: skip
            with pytest.raises(errors.FileTooBigError) as refused:
                await files.fetch(bot, Attachment(file_id, 1000, "voice"), settings)
        assert refused.value.user_message == messages.file_too_big(CAP)
        assert TELEGRAM_TOKEN not in "".join(traceback.format_exception(refused.value))
        if mode == "endless":
            await asyncio.wait_for(file_server.client_hung_up.wait(), 10)
            assert file_server.bytes_sent < CAP + STREAM_SLACK_BYTES < TRAP_STREAM_BYTES


# --- 2. temporary files ---------------------------------------------------------------------------
@pytest.fixture
def fresh_tempdir(tmp_path, monkeypatch) -> Path:
    """Every temporary file of this process (and of the ffmpeg / espeak-ng it starts) goes here."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def _assert_empty(folder: Path) -> None:
    # A file still being removed by a worker thread is gone within a moment; a leak stays.
    deadline = time.monotonic() + 5
    while any(folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == []


async def test_no_temporary_files_are_left_by_a_full_cycle_or_by_failures(
    fresh_tempdir, settings, render_worker, engine_slowdown, photo_bytes, voice_bytes
):
    flow = RequestFlow.from_settings(settings)
    target = ReplyTarget(chat_id="-100999", message_id="1")
    try:
        # Success: submit (audio decode), render (worker), clip_for_upload (fit + thumbnail), deliver.
        job = await flow.submit(_requester(), target, RenderRequest(photo=photo_bytes, audio=voice_bytes))
        # ... and with speech (TTS writes its own temporary files).
        spoken = await flow.submit(_requester(), target, RenderRequest(photo=photo_bytes, text="Hello there."))
        for queued in (job, spoken):
            finished = await asyncio.to_thread(wait_for_job, flow.store, queued.id, "done", CLIP_WAIT_S)
            assert await flow.begin_delivery(finished.id)
            with await flow.clip_for_upload(finished.id, 10 * 1024 * 1024) as clip:
                assert clip.path.is_relative_to(fresh_tempdir)  # the check below looks in the right place
                assert clip.path.stat().st_size == clip.size_bytes
            await flow.finish_delivery(finished.id, {"message_id": "2"})
            assert not clip.path.exists()

        # Failures: audio that ffmpeg can't read, text TTS can't speak, a clip that can't fit.
        with pytest.raises(errors.CorruptAudioError):
            await flow.submit(_requester(), target, RenderRequest(photo=photo_bytes, audio=b"OggS" + bytes(3000)))
        with pytest.raises(errors.EmptyTextError):
            await flow.submit(_requester(), target, RenderRequest(photo=photo_bytes, text="\u200b 🚀"))
        with pytest.raises(errors.AvatarbotError):
            await flow.clip_for_upload(job.id, 2_000)
        # A render cancelled while the worker encodes it.
        engine_slowdown(0.1)
        requester = _requester()
        cancelled = await flow.submit(requester, target, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=7))
        await asyncio.to_thread(wait_for_job, flow.store, cancelled.id, "running", CLIP_WAIT_S)
        await asyncio.sleep(0.5)  # some frames are in the encoder by now
        assert await flow.cancel(cancelled.id, requester.user_id)
        await asyncio.to_thread(_wait_until_released, flow.store, cancelled.id)
        # A render whose engine dies halfway through the frames (a GPU fault, say).
        with _engine_that_dies_after(settings, frames=10):
            crashed = await flow.submit(
                _requester(), target, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=8)
            )
            failed = await asyncio.to_thread(wait_for_job, flow.store, crashed.id, "failed", CLIP_WAIT_S)
        assert failed.user_message and "simulated" not in failed.user_message  # the fault's text stays internal
    finally:
        await flow.close()
    _assert_empty(fresh_tempdir)


def _wait_until_released(store, job_id: str) -> None:
    """A cancelled job's worker is done with it once its lease is gone."""
    from tests.conftest import wait_for

    wait_for(lambda: not store.redis.exists(keys.lease(job_id)), CLIP_WAIT_S)


@contextlib.contextmanager
def _engine_that_dies_after(settings, frames: int):
    from avatarbot.tasks import render_job

    class Dying:
        name = "lite"

        def __init__(self, inner):
            self.inner = inner

        def render(self, photo, audio, options, progress=None, should_cancel=None):
            clip = self.inner.render(photo, audio, options, progress=progress, should_cancel=should_cancel)

            def frames_then_fault():
                for index, frame in enumerate(clip.frames):
                    if index == frames:
                        raise RuntimeError("simulated device fault")
                    yield frame

            clip.frames = frames_then_fault()
            return clip

    original = render_job.engine_for("lite", settings)
    render_job.install_engine("lite", Dying(original))
    try:
        yield
    finally:
        render_job.install_engine("lite", original)


# --- 3. tokens -------------------------------------------------------------------------------------
DISCORD_TOKEN = "MTk5OTk5OTk5.Xq-dist1nctive-DISCORD-token-for-leak-tests.Zz9"
TELEGRAM_TOKEN = "987654321:dist1nctive-TELEGRAM-token-for-leak-tests"
WATCHED_LOGGERS = ("", "discord", "discord.http", "discord.gateway", "telegram", "telegram.ext", "httpx", "httpcore",
                   "aiohttp", "aiohttp.client", "avatarbot")  # fmt: skip


@pytest.fixture
def debug_logs(caplog):
    """DEBUG records from every logger, the chat libraries' own ones named explicitly (some set
    their own levels), plus whatever the event loop reports as unhandled."""
    for name in WATCHED_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _record_texts(record: logging.LogRecord) -> list[str]:
    texts = [record.getMessage(), str(record.msg), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        texts += traceback.format_exception(record.exc_info[1])
    if record.exc_text:
        texts.append(record.exc_text)
    if record.stack_info:
        texts.append(record.stack_info)
    return texts


def _assert_token_not_logged(token: str, caplog) -> None:
    assert len(caplog.records) > 20, "too few records: is DEBUG logging captured?"
    leaks = [f"{r.name}: {text[:300]}" for r in caplog.records for text in _record_texts(r) if token in text]
    assert leaks == [], "\n".join(leaks)


def _redis_values(url: str):
    """Every key and every value in the test Redis, whatever its type."""
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(count=1000):
            yield key
            kind = client.type(key).decode()
            if kind == "string":
                yield client.get(key) or b""
            elif kind == "hash":
                for field, value in client.hgetall(key).items():
                    yield field
                    yield value
            elif kind == "list":
                yield from client.lrange(key, 0, -1)
            elif kind == "set":
                yield from client.smembers(key)
            elif kind == "zset":
                yield from (member for member, _ in client.zrange(key, 0, -1, withscores=True))
            elif kind == "stream":
                for _, entry in client.xrange(key):
                    for field, value in entry.items():
                        yield field
                        yield value
    finally:
        client.close()


def _assert_token_not_in_redis(token: str, url: str) -> int:
    needle = token.encode()
    count = 0
    for value in _redis_values(url):
        count += 1
        assert needle not in value, f"token found in Redis: {value[:200]!r}"
    return count


async def test_the_discord_token_stays_out_of_logs_messages_errors_and_redis(
    settings, restore_endpoints, render_worker, redis_server, photo_bytes, voice_bytes, debug_logs, fresh_tempdir
):
    loop_errors = _catch_loop_errors()
    async with started_fake() as fake:
        config = discord_settings(settings, fake)
        async with running_discord_bot(config, fake):
            user = fake.add_user("tess")
            # Success: a clip comes back.
            photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg", width=256, height=256)
            voice = fake.add_attachment(voice_bytes, "hello.wav", "audio/wav")
            await fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": voice})
            await fake.wait_for(lambda: fake.posts_with_files(), CLIP_WAIT_S, "the clip")
            # Errors: a "photo" that is text, an attachment on a foreign host, a REST call that fails.
            bad = fake.add_attachment(b"just text", "face.png", "image/png")
            refused = await fake.slash_command(user, "animate", {}, attachments={"photo": bad, "voice": voice})
            foreign = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            foreign["url"] = foreign["proxy_url"] = "https://example.invalid/face.jpg"
            elsewhere = await fake.slash_command(user, "animate", {}, attachments={"photo": foreign, "voice": voice})
            await fake.wait_for(lambda: _interaction_texts(refused) and _interaction_texts(elsewhere), 30, "refusals")
            stale = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg")
            stale["url"] += "-gone"  # the CDN answers 404
            gone = await fake.slash_command(user, "animate", {}, attachments={"photo": stale, "voice": voice})
            await fake.wait_for(lambda: _interaction_texts(gone), 30, "the 404 refusal")

        assert messages.NOT_AN_IMAGE in _interaction_texts(refused)
        assert messages.DOWNLOAD_FAILED in _interaction_texts(elsewhere)
        # Everything the bot sent, except the Authorization header that must carry the token.
        sent = [repr(r.json) for r in fake.requests] + [r.path for r in fake.requests]
        sent += [repr(i.callback) + repr(i.followups) for i in fake.interactions.values()]
        sent += [repr(m) for m in fake.messages.values()]
        assert not [text for text in sent if DISCORD_TOKEN in text]
        assert not [f for r in fake.requests for _, _, f in r.files if DISCORD_TOKEN.encode() in f]
        # discord.py really used the token (the fake refuses IDENTIFY and REST calls without it).
        assert fake.identified and not [r for r in fake.requests if r.status == 401]

    _assert_token_not_logged(DISCORD_TOKEN, debug_logs)
    assert not [context for context in loop_errors if DISCORD_TOKEN in repr(context)]
    assert _assert_token_not_in_redis(DISCORD_TOKEN, redis_server.url) > 10
    for interaction in fake.interactions.values():  # interaction tokens are secrets too
        assert _assert_token_not_in_redis(interaction.token, redis_server.url)
    _assert_empty(fresh_tempdir)  # the bot's own delivery path cleaned up after itself too


async def test_the_telegram_token_stays_out_of_logs_messages_errors_and_redis(
    settings, telegram_fake, render_worker, redis_server, photo_bytes, voice_bytes, debug_logs, fresh_tempdir
):
    from avatarbot.bots.telegram.bot import TelegramBot

    tg = telegram_fake
    loop_errors = _catch_loop_errors()
    config = settings.model_copy(update={"telegram": _telegram_settings(tg).telegram})
    async with TelegramBot(config).running():
        alice = tg.user()
        chat = tg.group()
        # Success: photo, then a voice reply, then the clip.
        photo = tg.send(chat, alice, photo=photo_bytes)
        tg.send(chat, alice, voice=voice_bytes, voice_duration=2, reply_to=photo)
        await tg.wait_for("sendVideo", timeout=CLIP_WAIT_S)
        # Errors: an unreadable voice note, a failing getFile, a Bot API error on the reply.
        tg.send(chat, alice, voice=b"OggS" + bytes(500), voice_duration=2, reply_to=photo)
        await tg.wait_for("editMessageText", lambda c: c.params.get("text") == messages.CORRUPT_AUDIO, timeout=30)
        tg.fail("getFile", 500)
        tg.send(chat, alice, voice=voice_bytes, voice_duration=2, reply_to=photo)
        tg.fail("sendMessage", 400)
        tg.send(chat, alice, text="/animate")
        await _until(lambda: [c for c in tg.calls if c.method == "getFile" and c.status == 500], "the getFile fault")
        await _until(lambda: [c for c in tg.calls if c.method == "sendMessage" and c.status == 400], "the 400")
        await asyncio.sleep(1)  # let the failures run their course (retries, apologies)
        # Nothing still rendering, so the temp-file check below sees a settled process.
        await asyncio.to_thread(
            _wait_jobs_settled, config, "telegram", lambda job: int(job.reply_target.chat_id) in tg.chat_ids
        )

    sent = [repr(c.params) + c.method for c in tg.calls]
    assert not [text for text in sent if TELEGRAM_TOKEN in text]
    assert not [f for c in tg.calls for f in c.files.values() if TELEGRAM_TOKEN.encode() in f.data]
    _assert_token_not_logged(TELEGRAM_TOKEN, debug_logs)
    assert not [context for context in loop_errors if TELEGRAM_TOKEN in repr(context)]
    assert _assert_token_not_in_redis(TELEGRAM_TOKEN, redis_server.url) > 10
    _assert_empty(fresh_tempdir)


# --- helpers ---------------------------------------------------------------------------------------
def _requester() -> Requester:
    import uuid

    unique = uuid.uuid4().hex[:10]  # platform "cli": no bot of a later test tries to deliver these
    return Requester(platform="cli", user_id=f"sec-{unique}", server_id=f"chat-{unique}")


def _catch_loop_errors() -> list[dict]:
    """Unhandled task exceptions the event loop would print, collected instead."""
    caught: list[dict] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: caught.append(
        {**context, "text": "".join(traceback.format_exception(context["exception"])) if "exception" in context else ""}
    ))  # fmt: skip
    return caught


@pytest.fixture
def restore_endpoints(monkeypatch):
    """configure_endpoints changes discord.py class attributes; put them back after the test."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    )


def discord_settings(settings, fake: FakeDiscord):
    return with_overrides(
        settings,
        discord={
            "token": SecretStr(DISCORD_TOKEN),
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
            "sync_guilds": [int(fake.guild_id)],
            "cdn_hosts": ["127.0.0.1"],
            "status_edit_interval_s": 0.3,
        },
    )


@contextlib.asynccontextmanager
async def started_fake():
    fake = FakeDiscord(token=DISCORD_TOKEN)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@contextlib.asynccontextmanager
async def running_discord_bot(config, fake: FakeDiscord):
    from avatarbot.bots.discord.bot import AvatarBot, configure_endpoints

    configure_endpoints(config)
    bot = AvatarBot(config)
    runner = asyncio.create_task(bot.start(DISCORD_TOKEN))
    try:
        await fake.wait_for(lambda: bot.is_ready() and fake.commands.get(fake.guild_id), 30, "READY and sync")
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(runner, 30)


async def _until(predicate, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _wait_jobs_settled(settings, platform: str, mine) -> None:
    from avatarbot.tasks.jobs import ACTIVE_STATES, JobStore
    from tests.conftest import wait_for

    store = JobStore.from_settings(settings)
    try:
        wait_for(
            lambda: not [j for j in store.list_jobs(platform) if mine(j) and j.state in ACTIVE_STATES], CLIP_WAIT_S
        )
    finally:
        store.redis.close()


def _interaction_texts(interaction) -> str:
    parts = [((interaction.callback or {}).get("data") or {}).get("content") or ""]
    parts += [followup.get("content") or "" for followup in interaction.followups]
    return "\n".join(part for part in parts if part)


def _jobs_of(settings, platform: str, user_id: str) -> list:
    from avatarbot.tasks.jobs import JobStore

    store = JobStore.from_settings(settings)
    try:
        return [job for job in store.list_jobs(platform) if job.requester.user_id == user_id]
    finally:
        store.redis.close()
