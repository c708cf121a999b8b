"""Attachments come only through getFile on the configured Bot API, within a byte cap that is
checked before the download (the flow's intake, from what Telegram declared) and enforced while
streaming."""

from __future__ import annotations

import pytest
from telegram import Bot

from avatarbot import messages
from avatarbot.bots.telegram import files
from avatarbot.bots.telegram.requests import Attachment
from avatarbot.errors import EmptyFileError, FileTooBigError
from avatarbot.service import intake
from avatarbot.service.traits import Source
from avatarbot.settings import Settings, TelegramSettings
from tests.fake_telegram import TOKEN, FakeTelegram


def _settings(fake: FakeTelegram, *, max_download_bytes: int = 1000, local_mode: bool = False) -> Settings:
    return Settings(
        limits={"max_download_bytes": max_download_bytes},
        telegram=TelegramSettings(
            token=TOKEN, base_url=fake.base_url, base_file_url=fake.base_file_url, local_mode=local_mode
        ),
    )


@pytest.fixture
async def fake():
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


async def _fetch(fake: FakeTelegram, data: bytes, settings: Settings, declared: int | None = None) -> bytes:
    """What the bot does for one file: the intake checks the declared size, then getFile + stream."""
    file_id, _ = fake.add_file(data, "voice", "oga")
    declared = declared if declared is not None else len(data)
    cap = files.download_limit(settings)
    async with Bot(TOKEN, base_url=fake.base_url, base_file_url=fake.base_file_url) as bot:
        attachment = Attachment(file_id, declared, "voice")
        source = Source(fetch=lambda cap: files.fetch(bot, attachment, settings, cap), declared_bytes=declared)
        intake.check_declared_size(source, cap)
        return await intake.download(source, cap, settings.limits.download_deadline_s)


async def test_small_file_is_fetched(fake):
    assert await _fetch(fake, b"x" * 500, _settings(fake)) == b"x" * 500


async def test_declared_size_over_the_cap_is_refused_before_any_request(fake):
    with pytest.raises(FileTooBigError) as caught:
        await _fetch(fake, b"x" * 10, _settings(fake), declared=5000)
    assert caught.value.user_message == messages.file_too_big(1000)
    assert not fake.calls_to("getFile") and fake.download_requests == []


async def test_get_file_size_over_the_cap_is_refused_before_download(fake):
    file_id, _ = fake.add_file(b"x" * 5000, "voice", "oga")
    async with Bot(TOKEN, base_url=fake.base_url, base_file_url=fake.base_file_url) as bot:
        with pytest.raises(FileTooBigError):
            await files.fetch(bot, Attachment(file_id, None, "voice"), _settings(fake), 1000)
    assert fake.calls_to("getFile") and fake.download_requests == []


async def test_a_lying_size_is_caught_while_streaming(fake):
    file_id, _ = fake.add_file(b"x" * 300_000, "voice", "oga")
    fake.declared_sizes[file_id] = 100
    settings = _settings(fake, max_download_bytes=200_000)
    async with Bot(TOKEN, base_url=fake.base_url, base_file_url=fake.base_file_url) as bot:
        with pytest.raises(FileTooBigError):
            await files.fetch(bot, Attachment(file_id, 100, "voice"), settings, 200_000)
    assert len(fake.download_requests) == 1


async def test_empty_file_is_refused(fake):
    with pytest.raises(EmptyFileError):
        await _fetch(fake, b"", _settings(fake))


async def test_local_mode_reads_the_servers_disk_with_the_same_cap(tmp_path):
    server = FakeTelegram(local_dir=tmp_path / "bot-api")
    await server.start()
    try:
        settings = _settings(server, local_mode=True, max_download_bytes=100)
        file_id, _ = server.add_file(b"y" * 50, "voice", "oga")
        big_id, _ = server.add_file(b"y" * 150, "voice", "oga")
        server.declared_sizes[big_id] = 10
        async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.base_file_url, local_mode=True) as bot:
            assert await files.fetch(bot, Attachment(file_id, 50, "voice"), settings, 100) == b"y" * 50
            with pytest.raises(FileTooBigError):
                await files.fetch(bot, Attachment(big_id, 10, "voice"), settings, 100)
        assert server.download_requests == []  # nothing went over HTTP
    finally:
        await server.stop()


def test_limits_follow_the_mode():
    cloud = Settings(limits={"max_download_bytes": 10**9})
    assert files.download_limit(cloud) == 20_000_000  # getFile on the cloud Bot API
    assert files.upload_limit(cloud) == 50_000_000
    local = Settings(limits={"max_download_bytes": 10**9}, telegram={"local_mode": True})
    assert files.download_limit(local) == 10**9
    assert files.upload_limit(local) == 2_000_000_000
    assert files.upload_limit(Settings(telegram={"upload_limit_bytes": 1234})) == 1234
    # Each limit is said in the unit it is set in: Telegram's decimal MB, Discord's binary MiB.
    assert messages.file_too_big(files.download_limit(cloud)).endswith("20 MB.")
    assert messages.file_too_big(10 * 1024 * 1024).endswith("10 MiB.")
