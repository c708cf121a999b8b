"""A local fake of the Telegram Bot API, so the real python-telegram-bot stack can be tested
over HTTP without the internet.

It speaks the protocol the way PTB uses it: `POST /bot<token>/<method>` with form fields (every
non-string value JSON-encoded) or multipart form data (uploads; `attach://name` references),
answers `{"ok": true, "result": ...}`, long-polls `getUpdates`, and serves downloads at
`/file/bot<token>/<file_path>`. Tests play the users: they inject messages and button presses,
then assert on the recorded calls (uploaded bytes included). Failures (5xx, 429 with
retry_after, dropped connections) can be injected per method for fault drills.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

TOKEN = "123456:TEST-token-secret-value"
BOT_USER = {
    "id": 123456,
    "is_bot": True,
    "first_name": "Avatar",
    "username": "avatar_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}

# Form values that are plain strings on the wire (all other values are JSON-encoded by PTB).
_TEXT_PARAMS = {
    "text",
    "caption",
    "action",
    "parse_mode",
    "file_id",
    "callback_query_id",
    "emoji",
    "title",
    "description",
    "short_description",
    "name",
    "url",
}


@dataclass
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One request the bot made."""

    method: str
    params: dict[str, Any]
    files: dict[str, UploadedFile]
    at: float = field(default_factory=time.monotonic)
    status: int = 200
    result: Any = None  # what the server answered (e.g. the message a send created)

    def file(self, param: str) -> UploadedFile | None:
        """The upload behind a parameter, whether sent directly or via `attach://`."""
        value = self.params.get(param)
        if isinstance(value, str) and value.startswith("attach://"):
            return self.files.get(value[len("attach://") :])
        return self.files.get(param)


@dataclass
class Fault:
    status: int  # 0: drop the connection without answering
    retry_after: int | None = None
    description: str = "Internal Server Error"


class FakeTelegram:
    """The Bot API server plus the users and chats that talk to the bot."""

    def __init__(self, token: str = TOKEN, *, local_dir: Path | None = None):
        """`local_dir`: behave like a self-hosted server in --local mode, whose getFile answers
        an absolute path on its own disk instead of a download path."""
        self.token = token
        self.local_dir = local_dir
        self.declared_sizes: dict[str, int] = {}  # file_id -> a (lying) file_size for getFile
        self.bot = dict(BOT_USER)
        self.calls: list[Call] = []
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, bytes)
        self.messages: dict[tuple[int, int], dict] = {}  # (chat_id, message_id) -> message
        self.deleted: set[tuple[int, int]] = set()
        self.chat_admins: dict[int, set[int]] = {}
        # Ids unique to this server, so tests sharing one Redis never see each other's jobs.
        self.id_base = random.randrange(1, 10**6) * 1000
        self.chat_ids: set[int] = set()
        self.download_requests: list[str] = []
        # How the file server answers downloads: None (at once), "stall" (accepts, never answers)
        # or "trickle" (one byte a second, never done); hostile-host tests set it.
        self.download_mode: str | None = None
        self.stray_requests: list[str] = []  # requests for paths outside the Bot API's routes
        self._stopping = asyncio.Event()
        self._updates: list[dict] = []
        self._update_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port: int | None = None

    # --- server lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=2 * 1024**3)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_download)
        app.router.add_route("*", "/{tail:.*}", self._handle_stray)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._closing = True  # long polls still waiting answer now, so shutdown doesn't wait
        self._stopping.set()  # and stalled downloads end
        await self._notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # --- fault injection -------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
    ) -> None:
        """The next `times` calls of `method` fail: 5xx, 429 (with retry_after), or 0 = disconnect."""
        if description is None:
            description = f"Too Many Requests: retry after {retry_after}" if status == 429 else "Internal Server Error"
        self._faults.setdefault(method.lower(), []).extend(
            Fault(status, retry_after, description) for _ in range(times)
        )

    # --- what the bot did ------------------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower() and c.status == 200]

    async def wait_for(
        self, method: str, predicate: Callable[[Call], bool] = lambda c: True, timeout: float = 30.0, count: int = 1
    ) -> Call:
        """Wait until the bot made `count` successful calls of `method` matching `predicate`;
        returns the last of them."""

        def matching() -> list[Call]:
            return [c for c in self.calls_to(method) if predicate(c)]

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: len(matching()) >= count), timeout)
            except TimeoutError:
                seen = [(c.method, c.params) for c in self.calls[-15:]]
                raise AssertionError(f"no {count}x {method} within {timeout}s; last calls: {seen}") from None
        return matching()[count - 1]

    # --- users, chats and messages ---------------------------------------------------------------
    def user(self, n: int = 1, first_name: str = "Alice", language_code: str = "en") -> dict:
        return {"id": self.id_base + n, "is_bot": False, "first_name": first_name, "language_code": language_code}

    def private_chat(self, user: dict) -> dict:
        self.chat_ids.add(user["id"])
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}

    def group(self, n: int = 1, *, forum: bool = False, title: str = "Friends") -> dict:
        chat_id = -(10**12 + self.id_base + n)  # supergroup ids look like -100xxxxxxxxxx
        self.chat_ids.add(chat_id)
        chat = {"id": chat_id, "type": "supergroup", "title": title}
        if forum:
            chat["is_forum"] = True
        return chat

    def add_file(self, data: bytes, path_prefix: str = "documents", extension: str = "bin") -> tuple[str, str]:
        """Store bytes the bot can fetch through getFile. Returns (file_id, file_unique_id)."""
        n = next(self._file_ids)
        file_id = f"FILE{n:04d}"
        self.files[file_id] = (f"{path_prefix}/file_{n}.{extension}", data)
        return file_id, f"U{n:04d}"

    def _file_object(self, data: bytes, prefix: str, ext: str, **extra) -> dict:
        file_id, unique = self.add_file(data, prefix, ext)
        return {"file_id": file_id, "file_unique_id": unique, "file_size": len(data), **extra}

    def photo_sizes(self, data: bytes) -> list[dict]:
        """Like Telegram: several sizes, largest last. The small one is a real downscale."""
        from PIL import Image

        image = Image.open(io.BytesIO(data))
        small = image.convert("RGB").copy()
        small.thumbnail((90, 90))
        buffer = io.BytesIO()
        small.save(buffer, "JPEG")
        return [
            self._file_object(buffer.getvalue(), "photos", "jpg", width=small.width, height=small.height),
            self._file_object(data, "photos", "jpg", width=image.width, height=image.height),
        ]

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _store(self, message: dict) -> dict:
        self.messages[(message["chat"]["id"], message["message_id"])] = message
        return message

    def topic(self, chat: dict, name: str = "Topic", creator: dict | None = None) -> dict:
        """Create a forum topic; returns its root service message (its id is the thread id)."""
        message_id = self._next_message_id(chat["id"])
        return self._store(
            {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": chat,
                "from": creator or self.user(),
                "message_thread_id": message_id,
                "forum_topic_created": {"name": name, "icon_color": 7322096},
            }
        )

    def send(
        self,
        chat: dict,
        sender: dict,
        *,
        text: str | None = None,
        caption: str | None = None,
        photo: bytes | None = None,
        voice: bytes | None = None,
        voice_duration: int = 1,
        audio: bytes | None = None,
        audio_duration: int = 1,
        video: bytes | None = None,
        video_note: bytes | None = None,
        document: bytes | None = None,
        document_name: str = "file.bin",
        document_mime: str = "application/octet-stream",
        reply_to: dict | None = None,
        topic: dict | None = None,
    ) -> dict:
        """A user posts a message; the bot sees it on its next getUpdates. Returns the message."""
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
        }
        entities_text = text if text is not None else caption
        if text is not None:
            message["text"] = text
        if caption is not None:
            message["caption"] = caption
        if entities_text and entities_text.startswith("/"):
            command = entities_text.split()[0]
            key = "entities" if text is not None else "caption_entities"
            message[key] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if photo is not None:
            message["photo"] = self.photo_sizes(photo)
        if voice is not None:
            message["voice"] = self._file_object(voice, "voice", "oga", duration=voice_duration, mime_type="audio/ogg")
        if audio is not None:
            message["audio"] = self._file_object(audio, "music", "mp3", duration=audio_duration, mime_type="audio/mpeg")
        if video is not None:
            message["video"] = self._file_object(
                video, "videos", "mp4", width=64, height=64, duration=1, mime_type="video/mp4"
            )
        if video_note is not None:
            message["video_note"] = self._file_object(video_note, "video_notes", "mp4", length=64, duration=1)
        if document is not None:
            message["document"] = self._file_object(
                document,
                "documents",
                document_name.rsplit(".", 1)[-1],
                file_name=document_name,
                mime_type=document_mime,
            )
        if topic is not None:
            # Telegram marks topic messages and, for non-replies, points reply_to_message at the
            # topic's root service message.
            message["message_thread_id"] = topic["message_id"]
            message["is_topic_message"] = True
            message["reply_to_message"] = reply_to or topic
        elif reply_to is not None:
            message["reply_to_message"] = reply_to
        self._store(message)
        self._push({"message": message})
        return message

    def press(self, message: dict, sender: dict, data: str) -> str:
        """A user taps an inline button under `message`. Returns the callback query id."""
        query_id = f"CQ{next(self._update_ids)}"
        self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": sender,
                    "message": message,
                    "chat_instance": "ci-1",
                    "data": data,
                }
            }
        )
        return query_id

    def make_admin(self, chat: dict, user: dict) -> None:
        self.chat_admins.setdefault(chat["id"], set()).add(user["id"])

    def _push(self, update: dict) -> None:
        update["update_id"] = next(self._update_ids)
        self._updates.append(update)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- HTTP ------------------------------------------------------------------------------------
    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
        params: dict[str, Any] = {}
        files: dict[str, UploadedFile] = {}
        if request.content_type == "application/json":
            return await request.json(), files
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()
                if part.filename is not None:
                    files[part.name] = UploadedFile(part.filename, part.headers.get("Content-Type", ""), bytes(data))
                else:
                    params[part.name] = _decode(part.name, data.decode())
            return params, files
        form = await request.post()
        for key, value in form.items():
            params[key] = _decode(key, str(value))
        return params, files

    async def _handle_method(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params, files = await self._read_params(request)
        call = Call(method, params, files)
        faults = self._faults.get(method.lower())
        if faults:
            fault = faults.pop(0)
            call.status = fault.status
            self.calls.append(call)
            if fault.status == 0:
                request.transport.close()
                raise ConnectionResetError("fault drill: dropped connection")
            extra = {"retry_after": fault.retry_after} if fault.retry_after else None
            return _error(fault.status, fault.description, extra)
        chat_id = params.get("chat_id")
        if chat_id is not None and _int_or_none(chat_id) not in self.chat_ids:
            # What Telegram answers for a chat the bot isn't in. It also keeps each test's bot off
            # jobs that other tests left in the shared Redis (the bot would be recovering them).
            call.status = 400
            self.calls.append(call)
            return _error(400, "Bad Request: chat not found")
        handler = getattr(self, f"_api_{method.lower()}", None)
        if handler is None:
            self.calls.append(call)
            return _error(404, "Not Found: method not found")
        try:
            result = await handler(params, files)
        except _ApiError as error:
            call.status = error.status
            self.calls.append(call)
            return _error(error.status, error.description)
        call.result = result
        self.calls.append(call)
        await self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        path = request.match_info["path"]
        self.download_requests.append(path)
        for file_path, data in self.files.values():
            if file_path == path:
                if self.download_mode is not None:
                    return await self._hostile_download(request, data)
                return web.Response(body=data, content_type="application/octet-stream")
        return _error(404, "Not Found")

    async def _hostile_download(self, request: web.Request, data: bytes) -> web.StreamResponse:
        """A file host that accepts the connection and then never answers, or answers one byte
        a second; either way it is done only when the client gives up or the server stops."""
        if self.download_mode == "stall":
            await self._stopping.wait()
            return web.Response(status=503)
        response = web.StreamResponse(headers={"Content-Length": str(len(data) * 100)})
        await response.prepare(request)
        for byte in itertools.cycle(data or b"x"):
            await response.write(bytes([byte]))
            try:
                await asyncio.wait_for(self._stopping.wait(), 1.0)
                break
            except TimeoutError:
                continue
        return response

    async def _handle_stray(self, request: web.Request) -> web.StreamResponse:
        self.stray_requests.append(request.path)
        return _error(404, "Not Found")

    # --- Bot API methods -------------------------------------------------------------------------
    async def _api_getme(self, params, files):
        return self.bot

    async def _api_logout(self, params, files):
        return True

    async def _api_deletewebhook(self, params, files):
        return True

    async def _api_setmycommands(self, params, files):
        return True

    async def _api_getmycommands(self, params, files):
        return []

    async def _api_getupdates(self, params, files):
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        if offset:
            # Telegram forgets updates below the offset: they were confirmed.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

        def pending() -> list[dict]:
            return [u for u in self._updates if u["update_id"] >= offset][:limit]

        if not pending() and timeout > 0:
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait_for(lambda: bool(pending()) or self._closing), timeout)
                except TimeoutError:
                    pass
        return pending()

    async def _api_getfile(self, params, files):
        file_id = params.get("file_id")
        if file_id not in self.files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        if self.local_dir is not None:
            local = self.local_dir / path
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
            path = str(local)
        size = self.declared_sizes.get(file_id, len(data))
        return {"file_id": file_id, "file_unique_id": "U" + file_id, "file_size": size, "file_path": path}

    async def _api_getchatmember(self, params, files):
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        status = "administrator" if user_id in self.chat_admins.get(chat_id, set()) else "member"
        user = self.user(user_id)
        if status == "administrator":
            return {
                "status": status,
                "user": user,
                "can_be_edited": False,
                "is_anonymous": False,
                "can_manage_chat": True,
                "can_delete_messages": True,
                "can_manage_video_chats": True,
                "can_restrict_members": True,
                "can_promote_members": False,
                "can_change_info": True,
                "can_invite_users": True,
                "can_post_stories": False,
                "can_edit_stories": False,
                "can_delete_stories": False,
            }
        return {"status": status, "user": user}

    def _chat_for(self, chat_id: int) -> dict:
        for (known_chat, _), message in self.messages.items():
            if known_chat == chat_id:
                return message["chat"]
        return {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup", "first_name": "?"}

    def _bot_message(self, params: dict, **content) -> dict:
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": self._chat_for(chat_id),
            "from": self.bot,
            **content,
        }
        thread_id = params.get("message_thread_id")
        if thread_id is not None:
            message["message_thread_id"] = int(thread_id)
            message["is_topic_message"] = True
        reply = params.get("reply_parameters") or {}
        reply_id = reply.get("message_id") or params.get("reply_to_message_id")
        if reply_id is not None:
            replied = self.messages.get((int(reply.get("chat_id", chat_id)), int(reply_id)))
            if replied is None or (chat_id, int(reply_id)) in self.deleted:
                if not reply.get("allow_sending_without_reply"):
                    raise _ApiError(400, "Bad Request: message to be replied not found")
            else:
                message["reply_to_message"] = replied
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return self._store(message)

    async def _api_sendmessage(self, params, files):
        return self._bot_message(params, text=params["text"])

    async def _api_editmessagetext(self, params, files):
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None or key in self.deleted:
            raise _ApiError(400, "Bad Request: message to edit not found")
        if message.get("text") == params["text"] and message.get("reply_markup") == params.get("reply_markup"):
            raise _ApiError(400, "Bad Request: message is not modified")
        message["text"] = params["text"]
        message["edit_date"] = int(time.time())
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    async def _api_deletemessage(self, params, files):
        key = (int(params["chat_id"]), int(params["message_id"]))
        if key not in self.messages or key in self.deleted:
            raise _ApiError(400, "Bad Request: message to delete not found")
        self.deleted.add(key)
        return True

    async def _api_sendchataction(self, params, files):
        return True

    async def _api_answercallbackquery(self, params, files):
        return True

    def _uploaded(self, params, files, name: str) -> tuple[bytes, dict]:
        upload = Call(name, params, files).file(name)
        if upload is None:
            value = params.get(name)
            if value in self.files:  # re-sent by file_id
                return self.files[value][1], {}
            raise _ApiError(400, f"Bad Request: there is no {name} in the request")
        return upload.data, {}

    async def _api_sendvideo(self, params, files):
        data, _ = self._uploaded(params, files, "video")
        video = self._file_object(
            data,
            "videos",
            "mp4",
            width=int(params.get("width") or 0),
            height=int(params.get("height") or 0),
            duration=int(params.get("duration") or 0),
            mime_type="video/mp4",
        )
        content = {"video": video}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._bot_message(params, **content)

    async def _api_senddocument(self, params, files):
        data, _ = self._uploaded(params, files, "document")
        upload = Call("", params, files).file("document")
        document = self._file_object(
            data,
            "documents",
            "mp4",
            file_name=upload.filename if upload else "file",
            mime_type=upload.content_type if upload else "application/octet-stream",
        )
        content = {"document": document}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._bot_message(params, **content)

    async def _api_editmessagereplymarkup(self, params, files):
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None or key in self.deleted:
            raise _ApiError(400, "Bad Request: message to edit not found")
        message["reply_markup"] = params.get("reply_markup")
        return message


class _ApiError(Exception):
    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


def _decode(name: str, value: str) -> Any:
    """PTB JSON-encodes every non-string form value; strings travel as they are."""
    if name in _TEXT_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _error(status: int, description: str, parameters: dict | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)
