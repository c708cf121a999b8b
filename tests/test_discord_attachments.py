"""Attachment checks and downloads, against the fake Discord's CDN over real HTTP."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import aiohttp
import discord
import pytest

from avatarbot import errors, messages
from avatarbot.bots.discord import attachments
from avatarbot.settings import Settings
from tests.fake_discord import FakeDiscord


def _attachment(data: dict) -> discord.Attachment:
    # An Attachment only keeps `state.http` (for its own save/read helpers, which we don't use).
    return discord.Attachment(data=data, state=SimpleNamespace(http=None))


@pytest.fixture
async def fake():
    server = FakeDiscord()
    await server.start()
    yield server
    await server.close()


def _settings(**limits) -> Settings:
    return Settings(discord={"cdn_hosts": ["127.0.0.1"]}, limits=limits or {})


async def test_download_reads_the_bytes_from_the_cdn(fake):
    payload = b"\x89PNG" + bytes(5000)
    attachment = _attachment(fake.add_attachment(payload, "face.png", "image/png"))
    async with aiohttp.ClientSession() as session:
        assert await attachments.download(attachment, _settings(), session) == payload
    assert len(fake.cdn_downloads) == 1


async def test_download_stops_at_the_cap_when_the_declared_size_lies(fake):
    cap = 64 * 1024
    data = fake.add_attachment(bytes(10 * cap), "big.ogg", "audio/ogg", declared_size=1000)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(errors.FileTooBigError) as refused:
            await attachments.download(_attachment(data), _settings(max_download_bytes=cap), session)
    assert refused.value.user_message == messages.file_too_big(cap)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/attachments/1/2/face.png",
        "http://cdn.discordapp.com/attachments/1/2/face.png",  # Discord's CDN, but not over https
        "https://cdn.discordapp.com.evil.example/attachments/1/2/face.png",
        "file:///etc/passwd",
    ],
)
async def test_download_refuses_hosts_other_than_discords_cdn(fake, url):
    data = fake.add_attachment(b"data", "face.png", "image/png")
    data["url"] = url
    async with aiohttp.ClientSession() as session:
        with pytest.raises(errors.InputError) as refused:
            await attachments.download(_attachment(data), Settings(), session)
    assert refused.value.user_message == messages.DOWNLOAD_FAILED
    assert fake.cdn_downloads == []


async def test_a_configured_host_must_be_named_to_be_used(fake):
    data = fake.add_attachment(b"data", "face.png", "image/png")  # served from 127.0.0.1
    async with aiohttp.ClientSession() as session:
        with pytest.raises(errors.InputError):
            await attachments.download(_attachment(data), Settings(), session)


async def test_a_missing_file_is_a_clear_error(fake):
    data = fake.add_attachment(b"data", "face.png", "image/png")
    data["url"] += "-gone"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(errors.InputError) as refused:
            await attachments.download(_attachment(data), _settings(), session)
    assert refused.value.user_message == messages.DOWNLOAD_FAILED


def test_metadata_checks():
    settings = Settings()
    base = {
        "id": "1",
        "url": "https://cdn.discordapp.com/a",
        "proxy_url": "https://media.discordapp.net/a",
    }
    photo = _attachment({**base, "filename": "me.JPG", "size": 1000})  # no content type: by extension
    attachments.check_photo(photo, settings)
    heic = _attachment({**base, "filename": "me.heic", "size": 1000, "content_type": "image/heic"})
    attachments.check_photo(heic, settings)
    with pytest.raises(errors.NotAnImageError):
        attachments.check_photo(
            _attachment(
                {
                    **base,
                    "filename": "x.pdf",
                    "size": 9,
                    "content_type": "application/pdf",
                }
            ),
            settings,
        )
    with pytest.raises(errors.EmptyFileError):
        attachments.check_photo(
            _attachment({**base, "filename": "x.png", "size": 0, "content_type": "image/png"}),
            settings,
        )
    song = _attachment({**base, "filename": "song.mp3", "size": 5000, "content_type": "audio/mpeg"})
    attachments.check_sound(song, settings)
    video = _attachment({**base, "filename": "clip.mp4", "size": 5000, "content_type": "video/mp4"})
    attachments.check_sound(video, settings)
    with pytest.raises(errors.AudioError) as refused:
        attachments.check_sound(
            _attachment({**base, "filename": "a.png", "size": 9, "content_type": "image/png"}),
            settings,
        )
    assert refused.value.user_message == messages.NOT_A_RECORDING
    long_voice = _attachment({**base, "filename": "voice-message.ogg", "size": 9000, "content_type": "audio/ogg",
                              "duration_secs": 61.0, "waveform": "AAAA"})  # fmt: skip
    with pytest.raises(errors.AudioTooLongError):
        attachments.check_sound(long_voice, settings)


def test_importing_the_package_does_not_import_discord_py():
    code = (
        "import sys, avatarbot.bots.discord as d; "
        "assert callable(d.run_discord); "
        "assert 'discord' not in sys.modules, 'discord.py imported'; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_bot_modules_do_not_import_torch():
    code = "import sys, avatarbot.bots.discord.bot; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_run_without_a_token_explains_what_to_do(capsys):
    from avatarbot.bots.discord import run_discord

    assert run_discord(Settings()) == 2
    assert "no Discord token" in capsys.readouterr().err
