"""The web page in a real headless Chromium, against a real Redis and a real Celery worker (lite):
upload the astronaut and type a line, watch the progress, play the clip; a text file as the photo
is refused with the chat's sentence; Cancel while queued; a recording made in the browser.

Set AVATARBOT_WEB_SCREENSHOT=docs/web-page.png to save the screenshot the README shows.
"""

from __future__ import annotations

import io
import os
import time
import wave
from pathlib import Path

import pytest
from conftest import wait_for, wait_for_job, with_overrides
from web_harness import chromium, require_chromium, serve_page

from avatarbot import messages
from avatarbot.tasks.blobs import blob_store_from_settings
from avatarbot.tasks.jobs import JobStore

pytestmark = pytest.mark.timeout(240)

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
RENDER_TIMEOUT_S = 120
# A database of the test Redis that no worker consumes: jobs sent there stay queued.
NO_WORKER_DB = 7


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    with chromium() as driver:
        yield driver


def _open(browser, url: str) -> None:
    browser.get(url)
    wait_for(lambda: browser.execute_script("return !document.getElementById('request').hidden"), 20)


def _element(browser, element_id: str):
    return browser.find_element("id", element_id)


def _text(browser, element_id: str) -> str:
    return browser.execute_script(f"return document.getElementById('{element_id}').textContent")


def _page_job_id(browser) -> str:
    return wait_for(lambda: browser.execute_script("return localStorage.getItem('avatarbot-job')"), 20)


def _video_state(browser) -> dict:
    return browser.execute_script(
        "const v = document.getElementById('clip');"
        "return {ready: v.readyState, duration: v.duration, src: v.currentSrc, error: v.error && v.error.code,"
        " width: v.videoWidth, hidden: v.hidden};"
    )


def _wait_playable(browser) -> dict:
    """The clip's <video> has all it needs to play (readyState 4, HAVE_ENOUGH_DATA)."""

    def playable():
        state = _video_state(browser)
        assert not state["error"], state
        return state if state["ready"] == 4 and not state["hidden"] else None

    return wait_for(playable, RENDER_TIMEOUT_S, 0.1)


def _wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as wav:
        return wav.getnframes() / wav.getframerate()


def test_astronaut_and_a_typed_line_become_a_clip_that_plays(settings, render_worker, engine_slowdown, browser):
    from selenium.webdriver.support.ui import Select

    engine_slowdown(0.1)  # a few seconds of rendering, so the progress can be seen
    with serve_page(settings) as url:
        _open(browser, url)
        _element(browser, "photo").send_keys(str(ASTRONAUT))
        _element(browser, "text").send_keys("Hello from the browser!")
        Select(_element(browser, "voice")).select_by_value("en-gb-male")
        Select(_element(browser, "quality")).select_by_value("fast")
        browser.execute_script("document.getElementById('motion').value = '1.5'")
        _element(browser, "submit").click()

        seen_statuses, seen_fractions = set(), set()

        def finished():
            seen_statuses.add(_text(browser, "status"))
            seen_fractions.add(browser.execute_script("return document.getElementById('progress').position"))
            return _element(browser, "actions").is_displayed()

        wait_for(finished, RENDER_TIMEOUT_S, 0.05)
        assert any(status.startswith("Rendering") and "%" in status for status in seen_statuses), seen_statuses
        assert any(0 < fraction < 1 for fraction in seen_fractions), seen_fractions
        state = _wait_playable(browser)
        assert _text(browser, "status") == messages.WEB_TEXTS["done"]
        assert _element(browser, "progress").is_displayed() is False
        assert not _element(browser, "cancel").is_displayed()

        job_id = _page_job_id(browser)
        store = JobStore.from_settings(settings)
        job = store.get(job_id)
        spoken = _wav_seconds(blob_store_from_settings(settings).get(job.inputs["audio"]))
        assert state["duration"] == pytest.approx(spoken, abs=0.1), (state, spoken)
        assert state["width"] == job.width and state["src"].endswith(f"/api/jobs/{job_id}/clip")
        download = _element(browser, "download")
        assert download.is_displayed() and download.get_attribute("href").endswith("?download=1")
        assert job.options.text == "Hello from the browser!" and job.delivered
        assert (job.options.voice_name, job.options.quality, job.options.motion) == ("en-gb-male", "fast", 1.5)

        screenshot = os.environ.get("AVATARBOT_WEB_SCREENSHOT")
        if screenshot:
            browser.execute_script("document.getElementById('clip').currentTime = 0.9")
            time.sleep(0.5)
            browser.save_screenshot(screenshot)

        _element(browser, "again").click()
        wait_for(lambda: _page_job_id(browser) != job_id, 20)
        _wait_playable(browser)
        again = store.get(_page_job_id(browser))
        assert again.inputs == job.inputs and again.options.seed != job.options.seed
        store.redis.close()


def _refusal_for(browser, url: str, photo: Path) -> str:
    """Submit `photo` with a line of text; the refusal the page shows."""
    _open(browser, url)
    _element(browser, "photo").send_keys(str(photo))
    _element(browser, "text").send_keys("Hello")
    _element(browser, "submit").click()
    wait_for(lambda: _element(browser, "error").is_displayed(), 20)
    return _text(browser, "error")


def test_a_text_file_as_the_photo_shows_the_refusal(settings, browser, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a photo\n")
    with serve_page(settings) as url:
        assert _refusal_for(browser, url, notes) == messages.NOT_AN_IMAGE
        assert not _element(browser, "job").is_displayed()
        assert browser.execute_script("return localStorage.getItem('avatarbot-job')") is None


def test_a_photo_over_the_upload_cap_is_refused_before_it_is_sent(settings, browser):
    capped = with_overrides(settings, limits={"max_download_bytes": 50_000})
    assert ASTRONAUT.stat().st_size > 50_000
    with serve_page(capped) as url:
        assert _refusal_for(browser, url, ASTRONAUT) == messages.file_too_big(50_000)


def test_cancel_while_queued(settings, browser, redis_server):
    url_without_db = redis_server.url.rsplit("/", 1)[0]
    idle = with_overrides(settings, redis={"url": f"{url_without_db}/{NO_WORKER_DB}"})
    with serve_page(idle) as url:
        _open(browser, url)
        _element(browser, "use-example").click()
        _element(browser, "text").send_keys("Nobody renders this one.")
        _element(browser, "submit").click()
        wait_for(lambda: _element(browser, "cancel").is_displayed(), 20)
        assert _text(browser, "status") == messages.queued(1)
        # Queued: the bar has no value yet (an indeterminate bar), and it stays queued.
        assert browser.execute_script("return document.getElementById('progress').position") == -1
        job_id = _page_job_id(browser)
        store = JobStore.from_settings(idle)
        time.sleep(1.0)
        assert store.get(job_id).state == "queued"

        _element(browser, "cancel").click()
        wait_for(lambda: _text(browser, "status") == messages.CANCELLED, 20)
        assert not _element(browser, "cancel").is_displayed()
        assert not _element(browser, "clip").is_displayed()
        job = wait_for_job(store, job_id, "cancelled", 10)
        assert job.user_message == messages.CANCELLED
        wait_for(lambda: store.get(job_id).delivered, 20)  # the page's outcome is recorded like a chat post
        assert store.queue_position(job_id) is None
        store.redis.close()


def test_a_recording_made_in_the_browser(settings, render_worker, browser):
    """Chromium's fake microphone (a beep) through MediaRecorder, with the example photo."""
    with serve_page(settings) as url:
        _open(browser, url)
        _element(browser, "use-example").click()
        _element(browser, "tab-record").click()
        _element(browser, "record").click()
        wait_for(lambda: _text(browser, "record-state") == messages.WEB_TEXTS["recording"], 10)
        time.sleep(2.0)
        _element(browser, "record").click()
        wait_for(lambda: _text(browser, "record-state") == messages.WEB_TEXTS["recorded"], 10)
        _element(browser, "submit").click()
        state = _wait_playable(browser)
        assert state["duration"] == pytest.approx(2.0, abs=0.5)
        store = JobStore.from_settings(settings)
        job = store.get(_page_job_id(browser))
        assert job.options.text is None and job.state == "delivered"
        store.redis.close()
