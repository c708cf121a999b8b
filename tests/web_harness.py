"""The web page's test harness: the real server on a free port, and a real headless Chromium.

`serve_page(settings)` runs `avatarbot.web.server.create_app` in a thread with its own event
loop (Selenium calls block, so the page can't share the test's loop) and yields its base URL.
`chromium()` starts Debian's chromium through chromium-driver with the flags a closed network
needs (without them it stalls on start-up looking for updates and sync), a fresh profile, and a
fake microphone (a beeping tone) that the page may use without asking.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,1500",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
)
START_TIMEOUT_S = 30.0


def require_chromium() -> None:
    pytest.importorskip("selenium")
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver (apt install chromium chromium-driver)")


@contextmanager
def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="avatarbot-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def serve_page(settings, password: str | None = None):
    """The page's server for `settings` on 127.0.0.1; yields its base URL."""
    from aiohttp import web

    from avatarbot.web.server import create_app

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(settings, password))
    started = threading.Event()
    stop = asyncio.Event()
    port: list[int] = []
    failure: list[BaseException] = []

    async def serve() -> None:
        try:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port.append(runner.addresses[0][1])
        except BaseException as error:
            failure.append(error)
            raise
        finally:
            started.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), name="web-page", daemon=True)
    thread.start()
    assert started.wait(START_TIMEOUT_S), "the web page did not start"
    if failure:
        raise failure[0]
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
