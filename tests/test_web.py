"""The web page's HTTP API against a real Redis and a real Celery worker (lite engine): requests
go through the flow like the bots', refusals carry the chat's sentences, sessions see only their
own jobs, the password gate, upload caps and the reader's language.

The page itself, in a real browser, is tested in test_web_browser.py."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time

import aiohttp
import psutil
import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import wait_for, with_overrides

from avatarbot import messages
from avatarbot.tasks.jobs import JobStore
from avatarbot.vocab import Platform
from avatarbot.web.server import create_app
from avatarbot.web.surface import PAGE_SERVER_ID

WEB_PLATFORM = Platform.WEB

pytestmark = pytest.mark.timeout(180)

JOB_TIMEOUT_S = 90


@pytest.fixture
async def make_client():
    clients: list[TestClient] = []

    async def make(settings, password: str | None = None, **headers) -> TestClient:
        headers = {"X-Requested-With": "avatarbot", **headers}  # as the page's script sends it
        client = TestClient(TestServer(create_app(settings, password)), headers=headers)
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def _form(photo: bytes | None = None, *, text: str | None = None, audio: bytes | None = None, **fields):
    form = aiohttp.FormData()
    if photo is not None:
        form.add_field("photo", photo, filename="photo.jpg", content_type="image/jpeg")
    if audio is not None:
        form.add_field("audio", audio, filename="voice.wav", content_type="audio/wav")
    if text is not None:
        form.add_field("text", text)
    for name, value in fields.items():
        form.add_field(name, str(value))
    return form


async def _wait_finished(client: TestClient, job_id: str) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        response = await client.get(f"/api/jobs/{job_id}")
        assert response.status == 200
        view = await response.json()
        if view["finished"]:
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {view}")


async def test_a_request_renders_through_the_queue_and_the_clip_is_served(
    settings, render_worker, make_client, photo_bytes, voice_bytes
):
    client = await make_client(settings)
    response = await client.post("/api/jobs", data=_form(photo_bytes, audio=voice_bytes, quality="fast", motion=0.5))
    assert response.status == 202, await response.text()
    view = await response.json()
    assert view["state"] == "queued" and view["status"].startswith("Queued")

    view = await _wait_finished(client, view["id"])
    assert view["status"] == messages.WEB_TEXTS["done"] and not view.get("failed")
    assert view["duration"] == pytest.approx(1.6, abs=0.1)

    store = JobStore.from_settings(settings)
    job = store.get(view["id"])
    assert job.requester.platform == WEB_PLATFORM and job.requester.server_id == PAGE_SERVER_ID
    assert job.options.quality == "fast" and job.options.motion == 0.5
    assert job.delivered and job.delivery["file"] == f"{job.id}.mp4" and job.delivery["message_id"] == f"{job.id}-clip"

    clip = await client.get(view["clip_url"])
    assert clip.status == 200 and clip.content_type == "video/mp4"
    body = await clip.read()
    assert body[4:8] == b"ftyp" and body == store_clip(store, settings, job)
    partial = await client.get(view["clip_url"], headers={"Range": "bytes=0-99"})
    assert partial.status == 206 and len(await partial.read()) == 100  # <video> seeks with ranges
    download = await client.get(view["download_url"])
    assert download.headers["Content-Disposition"] == f'attachment; filename="avatarbot-{job.id}.mp4"'

    again = await client.post(f"/api/jobs/{job.id}/again")
    assert again.status == 202
    second = await _wait_finished(client, (await again.json())["id"])
    assert second["id"] != job.id and second["clip_url"]
    assert store.get(second["id"]).options.seed != job.options.seed
    store.redis.close()


def store_clip(store: JobStore, settings, job) -> bytes:
    from avatarbot.tasks.blobs import blob_store_from_settings

    return blob_store_from_settings(settings).get(job.clip_key)


async def test_refusals_carry_the_chat_sentences_and_queue_nothing(settings, make_client, photo_bytes, voice_bytes):
    client = await make_client(settings)
    store = JobStore.from_settings(settings)
    before = len(store.pending(WEB_PLATFORM))

    cases = [
        (_form(b"just some notes, not a picture\n", text="Hello"), 422, messages.NOT_AN_IMAGE),
        (_form(text="Hello"), 422, messages.WEB_TEXTS["need_photo"]),
        (_form(photo_bytes), 422, messages.WEB_TEXTS["need_sound"]),
        (_form(photo_bytes, text="   "), 422, messages.WEB_TEXTS["need_sound"]),
        (_form(photo_bytes, audio=b"\0" * 4000), 422, messages.CORRUPT_AUDIO),
        (_form(photo_bytes, text="Hi", voice_name="xx-robot"), 422, None),
    ]
    for form, status, sentence in cases:
        response = await client.post("/api/jobs", data=form)
        body = await response.json()
        assert response.status == status, body
        if sentence is None:
            assert body["error"].startswith("I don't know the voice 'xx-robot'")
        else:
            assert body["error"] == sentence
    assert len(store.pending(WEB_PLATFORM)) == before
    store.redis.close()


async def test_uploads_are_capped_like_the_bots(settings, make_client, photo_bytes):
    capped = with_overrides(settings, limits={"max_download_bytes": 50_000})
    client = await make_client(capped)
    big_photo = photo_bytes + b"\0" * 60_000
    response = await client.post("/api/jobs", data=_form(big_photo, text="Hello"))
    assert response.status == 413
    assert (await response.json())["error"] == messages.file_too_big(50_000)
    # A declared size far over the cap is refused before the body is read.
    huge = await client.post("/api/jobs", data=b"x" * 500_000, headers={"Content-Type": "multipart/form-data"})
    assert huge.status == 413


async def test_a_session_sees_only_its_own_jobs(settings, make_client, photo_bytes, voice_bytes):
    owner = await make_client(settings)
    stranger = await make_client(settings)
    response = await owner.post("/api/jobs", data=_form(photo_bytes, audio=voice_bytes))
    job_id = (await response.json())["id"]
    for method, path in [("GET", ""), ("POST", "/cancel"), ("POST", "/again"), ("GET", "/clip")]:
        answer = await stranger.request(method, f"/api/jobs/{job_id}{path}")
        assert answer.status == 404, (method, path)
    store = JobStore.from_settings(settings)
    assert store.get(job_id).state != "cancelled"
    store.redis.close()


async def test_quota_refusal_says_when_to_try_again(settings, make_client, photo_bytes, voice_bytes):
    client = await make_client(with_overrides(settings, jobs={"max_per_user_per_hour": 1}))
    first = await client.post("/api/jobs", data=_form(photo_bytes, audio=voice_bytes))
    assert first.status == 202
    response = await client.post("/api/jobs", data=_form(photo_bytes, text="Something else"))
    assert response.status == 422
    error = (await response.json())["error"]
    assert error in {messages.quota_user_hourly(1, 60 * minutes) for minutes in (59, 60)}, error


async def test_password_gate(settings, make_client, caplog, photo_bytes):
    password = "correct horse battery staple"
    client = await make_client(settings, password)
    with caplog.at_level(logging.DEBUG):
        config = await (await client.get("/api/config")).json()
        assert config["password_required"] and not config["signed_in"]
        refused = await client.get("/api/jobs/abc")
        assert refused.status == 401
        assert (await refused.json())["error"] == messages.WEB_TEXTS["sign_in_first"]
        assert (await client.post("/api/jobs", data=_form(photo_bytes, text="Hi"))).status == 401

        wrong = await client.post("/api/login", json={"password": "hunter2"})
        assert wrong.status == 401
        assert (await wrong.json())["error"] == messages.WEB_TEXTS["wrong_password"]
        assert not (await (await client.get("/api/config")).json())["signed_in"]

        right = await client.post("/api/login", json={"password": password})
        assert right.status == 200
        assert (await (await client.get("/api/config")).json())["signed_in"]
        assert (await client.get("/api/jobs/0123456789abcdef")).status == 404  # signed in: no such job
    assert password not in caplog.text and "hunter2" not in caplog.text

    # A forged or tampered cookie is no session.
    forged = await make_client(settings, password, Cookie="avatarbot_session=0123.abcd")
    assert (await forged.get("/api/jobs/abc")).status == 401


async def test_other_sites_cannot_drive_the_page(settings, make_client, photo_bytes):
    client = await make_client(settings)
    store = JobStore.from_settings(settings)
    before = len(store.pending(WEB_PLATFORM))
    # A form on another site posts without the page's header (and with the page's cookie or not).
    forged = await client.post("/api/jobs", data=_form(photo_bytes, text="Hi"), headers={"X-Requested-With": ""})
    assert forged.status == 403
    # DNS rebinding: another site's name resolving to 127.0.0.1 reaches a loopback-only page.
    rebound = await client.get("/api/config", headers={"Host": "evil.example:7860"})
    assert rebound.status == 403
    assert (await client.get("/api/config", headers={"Host": "localhost:7860"})).status == 200
    assert len(store.pending(WEB_PLATFORM)) == before
    store.redis.close()


def test_password_from_a_file_or_the_environment_and_never_in_a_repr(tmp_path, monkeypatch):
    from avatarbot.settings import Settings

    secret = tmp_path / "web_password"
    secret.write_text("s3cret-from-file\n")
    assert Settings(web={"password_file": secret}).web.resolved_password() == "s3cret-from-file"
    monkeypatch.setenv("AVATARBOT_WEB__PASSWORD", "env-secret")
    from_env = Settings()
    assert from_env.web.resolved_password() == "env-secret"
    assert "env-secret" not in repr(from_env) and "env-secret" not in str(from_env.model_dump())
    assert Settings().web.host == "127.0.0.1"  # only this machine, unless asked


async def test_the_page_speaks_the_readers_language(settings, make_client):
    german = await make_client(settings, **{"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    config = await (await german.get("/api/config")).json()
    assert config["language"] == "de-de" and config["voice"] == "de-female"
    assert config["texts"]["submit"] == messages.WEB_TEXTS["submit"]  # no German catalogue: English
    french = await (await german.get("/api/config?lang=fr-FR")).json()
    assert french["voice"] == "fr-female"
    unknown = await (await german.get("/api/config?lang=tlh")).json()
    assert unknown["voice"] == settings.tts.default_voice


async def test_a_chinese_reader_gets_the_page_and_its_refusals_in_chinese(settings, make_client):
    reader = await make_client(settings, **{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    config = await (await reader.get("/api/config")).json()
    assert config["texts"]["submit"] == messages.web_texts("zh-Hans")["submit"] != messages.WEB_TEXTS["submit"]
    assert config["qualities"][0]["label"] == messages.web_quality_labels("zh-Hans")["fast"]
    assert config["texts"]["too_big"] == messages.text(
        "file_too_big", "zh-Hans", limit_bytes=settings.limits.max_download_bytes
    )
    # the flow's own refusal (a text file as the photo) comes back in the reader's language
    refused = await reader.post("/api/jobs", data=_form(b"just some text, not a photo", text="hello"))
    assert refused.status == 422
    assert (await refused.json())["error"] == messages.text("not_an_image", "zh-Hans")
    # the page's own refusal (no photo at all), and navigator.language winning over the header
    spanish = await reader.post("/api/jobs?lang=es-MX", data=_form(text="hola"))
    assert (await spanish.json())["error"] == messages.web_texts("es")["need_photo"]


async def test_the_page_and_its_files_are_served(settings, make_client):
    client = await make_client(settings)
    page = await client.get("/")
    assert page.status == 200 and '<form id="request"' in await page.text()
    for path in ("/static/app.js", "/static/style.css", "/api/example-photo"):
        assert (await client.get(path)).status == 200, path


# --- the commands --------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_page(process, port: int) -> dict:
    import urllib.request

    def answered():
        assert process.poll() is None, "the command stopped"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/config", timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            return None

    return wait_for(answered, 90, 0.2)


def test_avatarbot_web_serves_the_page_and_stops_on_sigterm(redis_server, tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARBOT_")}
    env.update(AVATARBOT_DATA_DIR=str(tmp_path), AVATARBOT_REDIS__URL=redis_server.url, HF_HUB_OFFLINE="1",
               AVATARBOT_WEB__PASSWORD="from-the-environment")  # fmt: skip
    with open(tmp_path / "web.log", "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "avatarbot", "web", "--port", str(port)], env=env, stdout=log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        config = _wait_for_page(process, port)
        assert config["password_required"] and not config["signed_in"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    output = (tmp_path / "web.log").read_text()
    assert f"http://127.0.0.1:{port}/ (password required)" in output
    assert "from-the-environment" not in output


@pytest.mark.drill
def test_avatarbot_run_serves_the_page_when_enabled(tmp_path, photo_bytes):
    from test_runner import _clean_env

    port = _free_port()
    env = _clean_env(tmp_path)
    env.update(AVATARBOT_WEB__ENABLED="true", AVATARBOT_WEB__PORT=str(port))
    with open(tmp_path / "run.log", "wb") as log_file:
        run = subprocess.Popen(
            [sys.executable, "-m", "avatarbot", "run", "--no-worker"], env=env, stdout=log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for_page(run, port)
        children = psutil.Process(run.pid).children(recursive=True)
        assert (
            any(p.name() == "redis-server" for p in children) and len(children) >= 2
        )  # redis, the page (and spawn's tracker)
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
        wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children), 30)
    finally:
        if run.poll() is None:
            run.kill()
    assert "started web" in (tmp_path / "run.log").read_text()


async def test_without_redis_the_page_says_the_queue_is_unreachable(settings, make_client, photo_bytes):
    closed = with_overrides(settings, redis={"url": f"redis://127.0.0.1:{_free_port()}/0"})
    client = await make_client(closed)
    response = await client.post("/api/jobs", data=_form(photo_bytes, text="Hello"))
    assert response.status == 422
    assert (await response.json())["error"] == messages.QUEUE_UNAVAILABLE
    poll = await client.get("/api/jobs/0123456789abcdef")
    assert poll.status == 503 and (await poll.json())["error"] == messages.QUEUE_UNAVAILABLE


def test_the_page_imports_no_engine_stack():
    """The page is a surface: it starts in a moment and never loads torch."""
    code = (
        "import sys, avatarbot.web, avatarbot.web.server; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


async def test_a_repeated_request_is_the_same_job_and_the_flow_says_so(
    settings, make_client, photo_bytes, redis_server
):
    # A database no worker consumes: the first job stays queued.
    idle = with_overrides(settings, redis={"url": redis_server.url.rsplit("/", 1)[0] + "/7"})
    client = await make_client(idle)
    first = await (await client.post("/api/jobs", data=_form(photo_bytes, text="Say it once"))).json()
    again = await client.post("/api/jobs", data=_form(photo_bytes, text="Say it once"))
    assert again.status == 202
    repeat = await again.json()
    assert repeat["id"] == first["id"] and repeat["said"] == messages.ALREADY_ASKED
    cancelled = await (await client.post(f"/api/jobs/{first['id']}/cancel")).json()
    assert cancelled["said"] == messages.CANCELLING
    view = await _wait_finished(client, first["id"])
    assert view["failed"] and view["status"] == messages.CANCELLED
