"""The page's HTTP side: static files, sign-in, and a small JSON API over the flow's `Lifecycle`.

    GET  /                      the page (static/index.html; static/app.js does the rest)
    GET  /api/config            labels in the browser's language, voices, qualities, limits
    POST /api/login             {"password": ...} -> a session cookie (only with a password set)
    GET  /api/example-photo     the photo that ships in examples/ (when this is a source checkout)
    POST /api/jobs              multipart: photo | example=1, audio | text (+ voice_name), quality, motion
    GET  /api/jobs/{id}         where the job stands: place in line, progress, outcome, clip URL
    POST /api/jobs/{id}/cancel  stop it
    POST /api/jobs/{id}/again   a new take (same inputs, new seed)
    GET  /api/jobs/{id}/clip    the MP4 (Range requests work; ?download=1 to save it)

A submission goes through `Lifecycle.handle_request` with the browser session as the requester
and the form's files as already-downloaded `Source`s; Cancel and Again are `Lifecycle.press`es
on the job's own status line or clip. A refusal is answered with the sentence a chat user reads
(`{"error": ...}`: 422 for whatever the flow refuses, 413 for an upload over the cap, 401 / 403
for the page's own gates), with a log line for the operator; the page shows the sentence. A
repeated request answers with the job it repeats and what the flow said about it (`said`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import redis
from aiohttp import web

from avatarbot import messages
from avatarbot.errors import (
    AvatarbotError,
    EmptyFileError,
    FileTooBigError,
    InputError,
    QueueUnavailableError,
)
from avatarbot.service import replies
from avatarbot.service.flow import RequestFlow
from avatarbot.service.lifecycle import Lifecycle
from avatarbot.service.traits import Action, Press, Source
from avatarbot.tasks.jobs import Job, ReplyTarget
from avatarbot.vocab import QUALITY_TABLE, JobState, Platform
from avatarbot.web.sessions import COOKIE_MAX_AGE_S, COOKIE_NAME, Sessions
from avatarbot.web.surface import FormAnswer, WebSurface, requester

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# The example photo exists in a source checkout (scripts/install.sh installs one in place).
EXAMPLE_PHOTO = Path(__file__).resolve().parents[2] / "examples" / "astronaut.jpg"
# Form fields other than the two files are short; anything longer is cut off here.
MAX_FIELD_BYTES = 64 * 1024
# Room for the form's boundaries and short fields on top of two capped files.
FORM_OVERHEAD_BYTES = 256 * 1024
READ_CHUNK_BYTES = 64 * 1024
# A wrong password is answered this much later, to slow down guessing.
WRONG_PASSWORD_DELAY_S = 1.0
DEFAULT_LANGUAGE = "en"

SURFACE = web.AppKey("surface", WebSurface)
FLOW = web.AppKey("flow", RequestFlow)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
SESSIONS = web.AppKey("sessions", Sessions)
SETTINGS = web.AppKey("settings", object)
LOOPBACK_ONLY = web.AppKey("loopback_only", bool)
SESSION_ID = web.RequestKey("session_id", str)  # the caller's session id, or None
# Reachable without a session (the page must load to ask for the password).
PUBLIC_PATHS = frozenset({"/", "/api/config", "/api/login"})
# Every POST carries this header. A form on another site can't send it, and a script there can't
# without a CORS preflight we never allow: no other site can queue renders through a reader's
# browser, with or without a password.
REQUEST_HEADER = ("X-Requested-With", "avatarbot")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- language ------------------------------------------------------------------------------------
def language_of(request: web.Request) -> str:
    """The reader's language: the page's `lang` (navigator.language), else Accept-Language."""
    asked = request.query.get("lang") or request.headers.get("Accept-Language", "")
    tag = asked.split(",")[0].split(";")[0].strip().lower()
    return tag or DEFAULT_LANGUAGE


class PageTexts:
    """The messages catalogue read in one reader's language, with the `messages` module's own names
    (`texts.JOB_GONE`, `texts.file_too_big(n)`, `texts.WEB_TEXTS["submit"]`), so the page's code
    reads the same whichever language it speaks."""

    def __init__(self, lang: str):
        self.lang = lang
        self.WEB_TEXTS = messages.web_texts(lang)
        self.WEB_QUALITY_LABELS = messages.web_quality_labels(lang)

    def __getattr__(self, name: str):
        english = getattr(messages, name)
        if callable(english):
            return lambda *args, **kwargs: messages.localize(english(*args, **kwargs), self.lang)
        return messages.localize(english, self.lang)


def catalogue(language: str) -> PageTexts:
    """Every sentence the page shows comes through here, in the shipped language nearest to the
    reader's (English when none is near)."""
    return PageTexts(messages.resolve(language))


# --- the app -------------------------------------------------------------------------------------
def create_app(settings, password: str | None = None, *, loopback_only: bool = True) -> web.Application:
    """`loopback_only`: the server listens on a loopback address, so only requests naming a
    loopback host are real (anything else is DNS rebinding: a web site whose name resolves to
    127.0.0.1 trying to drive the page from the reader's own browser)."""
    app = web.Application(
        middlewares=[_guard_middleware, _session_middleware],
        client_max_size=2 * settings.limits.max_download_bytes + FORM_OVERHEAD_BYTES,
    )
    app[SETTINGS] = settings
    app[SESSIONS] = Sessions(settings.data_dir, password)
    app[LOOPBACK_ONLY] = loopback_only
    app.cleanup_ctx.append(_surface_context)
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_get("/api/config", _config)
    app.router.add_post("/api/login", _login)
    app.router.add_get("/api/example-photo", _example_photo)
    app.router.add_post("/api/jobs", _submit)
    app.router.add_get("/api/jobs/{job_id:[0-9a-f]{8,64}}", _job)
    app.router.add_post("/api/jobs/{job_id:[0-9a-f]{8,64}}/cancel", _cancel)
    app.router.add_post("/api/jobs/{job_id:[0-9a-f]{8,64}}/again", _again)
    app.router.add_get("/api/jobs/{job_id:[0-9a-f]{8,64}}/clip", _clip)
    return app


async def _surface_context(app: web.Application):
    """The flow and the page's lifecycle on it, for as long as the server runs."""
    flow = RequestFlow.from_settings(app[SETTINGS])
    app[FLOW] = flow
    app[SURFACE] = WebSurface(app[SETTINGS])
    app[LIFECYCLE] = Lifecycle(flow, app[SURFACE])
    app[LIFECYCLE].start()
    yield
    await app[LIFECYCLE].stop()
    await flow.close()


@web.middleware
async def _guard_middleware(request: web.Request, handler):
    if request.app[LOOPBACK_ONLY] and not is_loopback(_host_name(request.host)):
        log.warning("web: refused a request for host %r (not this machine's page)", request.host[:100])
        return web.json_response({"error": "forbidden"}, status=403)
    if request.method == "POST" and request.headers.get(REQUEST_HEADER[0]) != REQUEST_HEADER[1]:
        log.warning("web: refused a POST to %s without the page's header", request.path)
        return web.json_response({"error": "forbidden"}, status=403)
    return await handler(request)


def _host_name(host: str) -> str:
    """ "127.0.0.1:7860" -> "127.0.0.1", "[::1]:7860" -> "[::1]"."""
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@web.middleware
async def _session_middleware(request: web.Request, handler):
    sessions = request.app[SESSIONS]
    session_id = sessions.session_id(request.cookies.get(COOKIE_NAME))
    new_cookie = None
    static = request.path.startswith("/static/")
    if session_id is None and not sessions.password_required and not static:
        new_cookie = sessions.new_cookie()
        session_id = sessions.session_id(new_cookie)
    request[SESSION_ID] = session_id
    if session_id is None and request.path not in PUBLIC_PATHS and not static:
        return _error(request, "sign_in_first", status=401)
    try:
        response = await handler(request)
    except AvatarbotError as error:
        response = _refusal(request, error)
    if new_cookie is not None:
        _set_cookie(request, response, new_cookie)
    return response


def _set_cookie(request: web.Request, response: web.StreamResponse, cookie: str) -> None:
    response.set_cookie(
        COOKIE_NAME, cookie, max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="Strict", secure=request.secure, path="/"
    )


def _error(request: web.Request, key: str, status: int) -> web.Response:
    return web.json_response({"error": catalogue(language_of(request)).WEB_TEXTS[key]}, status=status)


def _refusal(request: web.Request, error: AvatarbotError) -> web.Response:
    """The page's own refusals (the form itself, the upload cap, Redis gone while polling): the
    user's sentence to the page, the detail to the log. The flow's are answered in `_submit`."""
    log.info("web request refused: %s (%s)", error.detail, error.code)
    status = 422 if isinstance(error, InputError) else 500
    if isinstance(error, FileTooBigError):
        status = 413
    elif isinstance(error, QueueUnavailableError):
        status = 503
    return web.json_response({"error": messages.for_error(error, catalogue(language_of(request)).lang)}, status=status)


# --- page and settings ---------------------------------------------------------------------------
async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _config(request: web.Request) -> web.Response:
    from avatarbot.tts.voices import default_voice_for, list_voices

    settings = request.app[SETTINGS]
    language = language_of(request)
    texts = catalogue(language)
    return web.json_response(
        {
            "language": language,
            "password_required": request.app[SESSIONS].password_required,
            "signed_in": request[SESSION_ID] is not None,
            "texts": {
                **texts.WEB_TEXTS,
                "cancel": texts.BUTTON_CANCEL,
                "again": texts.BUTTON_AGAIN,
                "job_gone": texts.JOB_GONE,
                "unexpected": texts.UNEXPECTED,
                "too_big": texts.file_too_big(settings.limits.max_download_bytes),
            },
            "voices": [{"value": voice.name, "label": voice.label} for voice in list_voices()],
            "voice": default_voice_for(language, settings.tts.default_voice),
            "qualities": [{"value": str(name), "label": texts.WEB_QUALITY_LABELS[name]} for name in QUALITY_TABLE],
            "quality": settings.render.quality,
            "motion": settings.render.motion,
            "max_upload_bytes": settings.limits.max_download_bytes,
            "max_text_chars": settings.limits.max_text_chars,
            "example_photo": EXAMPLE_PHOTO.is_file(),
        }
    )


async def _login(request: web.Request) -> web.Response:
    sessions = request.app[SESSIONS]
    try:
        body = await request.json()
        attempt = str(body.get("password", ""))
    except (ValueError, AttributeError):
        attempt = ""
    if not sessions.password_matches(attempt):
        log.warning("web: wrong password from %s", request.remote)
        await asyncio.sleep(WRONG_PASSWORD_DELAY_S)
        return _error(request, "wrong_password", status=401)
    response = web.json_response({"signed_in": True})
    _set_cookie(request, response, sessions.new_cookie())
    return response


async def _example_photo(request: web.Request) -> web.StreamResponse:
    if not EXAMPLE_PHOTO.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(EXAMPLE_PHOTO)


# --- jobs ----------------------------------------------------------------------------------------
@dataclass
class _Form:
    photo: bytes | None = None
    photo_type: str | None = None
    audio: bytes | None = None
    audio_type: str | None = None
    example: bool = False
    text: str = ""
    voice_name: str = ""
    quality: str = ""
    motion: str = ""


async def _submit(request: web.Request) -> web.Response:
    """One request through the flow's intake, as a chat message would go."""
    settings = request.app[SETTINGS]
    texts = catalogue(language_of(request))
    cap = settings.limits.max_download_bytes
    if request.content_length is not None and request.content_length > 2 * cap + FORM_OVERHEAD_BYTES:
        raise FileTooBigError(texts.file_too_big(cap), detail=f"web form of {request.content_length} bytes")
    form = await _read_form(request, cap)
    if form.photo is None and form.example and EXAMPLE_PHOTO.is_file():
        form.photo, form.photo_type = await asyncio.to_thread(EXAMPLE_PHOTO.read_bytes), "image/jpeg"
    if form.photo is None:
        raise InputError(texts.WEB_TEXTS["need_photo"], detail="web form without a photo")
    if form.audio is None and not form.text.strip():
        raise InputError(texts.WEB_TEXTS["need_sound"], detail="web form without a recording or text")
    session_id = request[SESSION_ID]
    answer = FormAnswer()
    job = await request.app[LIFECYCLE].handle_request(
        answer,
        requester(session_id, language_of(request)),
        ReplyTarget(chat_id=session_id),
        _uploaded(form.photo, form.photo_type, "web photo"),
        _uploaded(form.audio, form.audio_type, "web sound") if form.audio is not None else None,
        form.text if form.audio is None else None,
        voice_name=form.voice_name or None,
        quality=form.quality if form.quality in QUALITY_TABLE else None,
        motion=_float_or_none(form.motion),
    )
    if job is None:
        return web.json_response({"error": answer.said or texts.UNEXPECTED}, status=422)
    view = _view(request, job)
    if answer.said:  # a repeat: the flow says where the clip is
        view["said"] = answer.said
    return web.json_response(view, status=202)


def _uploaded(data: bytes, media_type: str | None, name: str) -> Source:
    """A file that came with the form: already here, its size and type as the browser declared."""

    async def fetch(max_bytes: int) -> bytes:
        return data

    return Source(fetch=fetch, declared_bytes=len(data), media_type=media_type or None, name=name)


async def _read_form(request: web.Request, cap: int) -> _Form:
    """Stream the multipart form, stopping any file at the byte cap (the bots' download cap)."""
    form = _Form()
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError) as error:
        raise InputError(messages.WEB_TEXTS["need_photo"], detail=f"not a multipart form: {error}") from error
    while (part := await reader.next()) is not None:
        if part.name in ("photo", "audio"):
            data = bytearray()
            while chunk := await part.read_chunk(READ_CHUNK_BYTES):
                data.extend(chunk)
                if len(data) > cap:
                    raise FileTooBigError(messages.file_too_big(cap), detail=f"web {part.name} passed {cap} bytes")
            if not data:
                raise EmptyFileError(messages.EMPTY_FILE, detail=f"web {part.name}: zero bytes")
            setattr(form, part.name, bytes(data))
            setattr(form, f"{part.name}_type", part.headers.get("Content-Type"))
        elif part.name in ("text", "voice_name", "quality", "motion", "example"):
            value = (await part.read_chunk(MAX_FIELD_BYTES)).decode("utf-8", errors="replace")
            if part.name == "example":
                form.example = value == "1"
            else:
                setattr(form, part.name, value)
    return form


def _float_or_none(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


async def _job(request: web.Request) -> web.Response:
    return web.json_response(_view(request, await _own_job(request)))


async def _cancel(request: web.Request) -> web.Response:
    job = await _own_job(request)
    outcome = await _press(request, job, Action.CANCEL)
    view = _view(request, await _own_job(request))
    return web.json_response({**view, "said": outcome.text})


async def _again(request: web.Request) -> web.Response:
    """A new take: the flow posts its status line, which tells us the new job."""
    job = await _own_job(request)
    surface = request.app[SURFACE]
    before = surface.latest_job(request[SESSION_ID])
    outcome = await _press(request, job, Action.AGAIN)
    new_id = surface.latest_job(request[SESSION_ID])
    new_job = await request.app[FLOW].get(new_id) if new_id and new_id != before else None
    if new_job is None:
        return web.json_response({"error": outcome.text}, status=422)
    return web.json_response({**_view(request, new_job), "said": outcome.text}, status=202)


async def _press(request: web.Request, job: Job, action: Action):
    """The page's buttons are the chats' buttons: pressed on the job's own status line or clip."""
    message_id = (job.delivery or {}).get("message_id") or job.status_message_id
    press = Press(
        action=action, job_id=job.id, chat_id=job.reply_target.chat_id, message_id=message_id,
        presser=requester(request[SESSION_ID], language_of(request)), is_moderator=_nobody_moderates,
    )  # fmt: skip
    return await request.app[LIFECYCLE].press(press)


async def _nobody_moderates() -> bool:
    """On the page everyone acts on their own jobs only."""
    return False


async def _clip(request: web.Request) -> web.StreamResponse:
    job = await _own_job(request)
    path = request.app[SURFACE].clip_path(job)
    if path is None:
        raise web.HTTPNotFound()
    headers = {"Content-Type": "video/mp4", "Cache-Control": "private, max-age=86400"}
    if request.query.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="avatarbot-{job.id}.mp4"'
    return web.FileResponse(path, headers=headers)


async def _own_job(request: web.Request) -> Job:
    """The job, if this session asked for it: other sessions' jobs don't exist for it."""
    try:
        job = await request.app[FLOW].get(request.match_info["job_id"])
    except redis.exceptions.ConnectionError as error:
        raise QueueUnavailableError(messages.QUEUE_UNAVAILABLE, detail=f"redis: {error}") from error
    if job is None or job.requester.platform != Platform.WEB or job.requester.user_id != request[SESSION_ID]:
        body = {"error": catalogue(language_of(request)).JOB_GONE}
        raise web.HTTPNotFound(text=json.dumps(body), content_type="application/json")
    return job


def _view(request: web.Request, job: Job) -> dict:
    """What the page shows for a job: the flow's words, the bar, the outcome."""
    texts = catalogue(language_of(request))
    surface = request.app[SURFACE]
    clip = surface.clip_path(job)
    fraction = min(1.0, job.step / job.total) if job.total > 0 else 0.0
    view = {
        "id": job.id,
        "state": job.state,
        "position": job.queue_position,
        "stage": job.stage,
        "fraction": round(fraction, 3),
        "eta_s": job.eta_s,
        "notes": job.notes,
        "active": job.active,
        "finished": False,
        "clip_url": None,
    }
    if job.active:
        view["status"] = surface.words(job.id) or replies.status(job)
    elif clip is not None:
        url = f"/api/jobs/{job.id}/clip"
        view.update(finished=True, status=texts.WEB_TEXTS["done"], clip_url=url, download_url=f"{url}?download=1")
        view.update(duration=job.duration, width=job.width, height=job.height)
    elif job.delivered:  # failed, cancelled, or a clip that couldn't be delivered (or has since expired)
        gone = job.state == JobState.DELIVERED and not (job.delivery or {}).get("error")
        view.update(finished=True, failed=True, status=texts.JOB_GONE if gone else replies.final_status(job))
    else:  # finished, and the flow is delivering the outcome to the page
        view["status"] = texts.WEB_TEXTS["finishing"]
    return view
