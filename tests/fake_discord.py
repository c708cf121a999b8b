"""A small, local Discord: REST API, gateway WebSocket and attachment CDN, on one aiohttp server.

The real discord.py client talks to it exactly as it talks to Discord (tests point
`discord.http.Route.BASE` and `DiscordWebSocket.DEFAULT_GATEWAY` at it through our settings), so
the bot's whole stack runs for real. It speaks only the part of the protocol the bot uses, but
that part keeps Discord's rules, because the tests are only as honest as this server:

- JSON answers carry `Content-Type: application/json` exactly (discord.py checks for equality).
- An interaction must be answered within `ack_deadline_s` (3 s on Discord), once.
- An interaction token dies after `interaction_token_lifetime_s` (15 min on Discord; a few
  seconds in tests): its webhook endpoints then answer 401 "Invalid Webhook Token".
- Uploads above the guild's file size limit answer 413, like Discord.
- A message posted with `nonce` + `enforce_nonce` twice returns the first message, not a copy.
- Without the Message Content intent, MESSAGE_CREATE arrives without content and attachments,
  except for messages that mention the bot (Discord's rule for privileged content).

Tests drive it with the helpers at the bottom (`post_message`, `slash_command`, `click`, ...)
and inspect `messages`, `interactions` and `requests`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from avatarbot.bots.discord.limits import (
    INTERACTION_ACK_S,
    INTERACTION_TOKEN_LIFETIME_S,
)

API_PREFIX = "/api/v10"
HEARTBEAT_INTERVAL_MS = 41_250
EPHEMERAL_FLAG = 1 << 6
VOICE_MESSAGE_FLAG = 1 << 13
MESSAGE_CONTENT_INTENT = 1 << 15
PREMIUM_TIER_UPLOAD_LIMITS = {
    0: 10 * 1024 * 1024,
    1: 10 * 1024 * 1024,
    2: 50 * 1024 * 1024,
    3: 100 * 1024 * 1024,
}

# Permission bits used here (Discord's values).
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_GUILD = 1 << 5
ADMINISTRATOR = 1 << 3
SEND_MESSAGES_IN_THREADS = 1 << 38
MEMBER_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | SEND_MESSAGES_IN_THREADS | ATTACH_FILES | READ_MESSAGE_HISTORY

# Interaction types and callback types.
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9

_snowflakes = itertools.count(1_300_000_000_000_000_000)


def snowflake() -> str:
    return str(next(_snowflakes))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _json(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": discord.py compares the header for equality.
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json"},
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"code": code, "message": message}, status=status)


@dataclass
class RecordedRequest:
    method: str
    path: str
    at: float
    json: Any = None
    files: list[tuple[str, str, bytes]] = field(default_factory=list)  # (field name, filename, bytes)
    status: int = 0
    message_id: str | None = None  # the message a POST created (or returned, for a repeated nonce)


RECORD = web.RequestKey("record", RecordedRequest)


@dataclass
class FakeInteraction:
    id: str
    token: str
    type: int
    created_at: float
    user_id: str
    channel_id: str
    payload: dict
    callback: dict | None = None
    callback_at: float | None = None
    original_message_id: str | None = None
    followups: list[dict] = field(default_factory=list)
    rejected_webhook_calls: int = 0


@dataclass
class FakeUser:
    id: str
    username: str
    permissions: int = MEMBER_PERMISSIONS
    bot: bool = False

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "username": self.username,
            "global_name": self.username,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
        }

    def member_json(self, *, with_user: bool = True, with_permissions: bool = False) -> dict:
        member = {
            "roles": [],
            "joined_at": "2024-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
        }
        if with_user:
            member["user"] = self.to_json()
        if with_permissions:
            member["permissions"] = str(self.permissions)
        return member


class FakeDiscord:
    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        interaction_token_lifetime_s: float = INTERACTION_TOKEN_LIFETIME_S,
        ack_deadline_s: float = INTERACTION_ACK_S,
        premium_tier: int = 0,
        upload_limit: int | None = None,
        message_content_allowed: bool = True,
        lose_first_upload_response: bool = False,
    ):
        self.token = token
        self.interaction_token_lifetime_s = interaction_token_lifetime_s
        self.ack_deadline_s = ack_deadline_s
        self.message_content_allowed = message_content_allowed
        # Store the first uploaded message but answer 502, as when a response is lost on the way.
        self.lose_first_upload_response = lose_first_upload_response
        # Statuses the next uploads are refused with, before anything is stored (e.g. [500]).
        self.upload_faults: list[int] = []
        # How the CDN answers: None (at once), "stall" (accepts, never answers) or "trickle"
        # (one byte a second, never done); hostile-host tests set it.
        self.cdn_mode: str | None = None
        self._stopping = asyncio.Event()
        self.preferred_locale = "en-US"  # the guild's, as its admins set it (Server Settings)
        self.application_id = snowflake()
        self.bot = FakeUser(
            self.application_id,
            "avatarbot",
            permissions=MEMBER_PERMISSIONS | MANAGE_MESSAGES,
            bot=True,
        )
        # What the bot may do in the channels (sent with every interaction as app_permissions).
        self.app_permissions = MEMBER_PERMISSIONS
        self.guild_id = snowflake()
        self.premium_tier = premium_tier
        self._upload_limit = upload_limit  # a smaller limit than the tier's, to exercise re-encoding
        self.channel_id = snowflake()
        self.other_channel_id = snowflake()
        self.thread_id = snowflake()
        self.users: dict[str, FakeUser] = {self.bot.id: self.bot}
        self.messages: dict[str, dict] = {}
        self.deleted_message_ids: list[str] = []
        self.edits: list[tuple[float, str, dict]] = []  # (time, message id, body)
        self.interactions: dict[str, FakeInteraction] = {}
        self.commands: dict[str | None, list[dict]] = {}
        self.requests: list[RecordedRequest] = []
        self.cdn: dict[str, tuple[bytes, str]] = {}  # path -> (bytes, content type)
        self.cdn_downloads: list[str] = []
        self.identified: list[dict] = []
        self._nonces: dict[tuple[str, str], str] = {}
        self._sockets: list[_GatewaySession] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> FakeDiscord:
        app = web.Application(client_max_size=200 * 1024 * 1024, middlewares=[self._record])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/{path:.*}", self._cdn)
        api = API_PREFIX
        r = app.router
        r.add_get(api + "/users/@me", self._users_me)
        r.add_get(api + "/oauth2/applications/@me", self._application)
        r.add_get(api + "/gateway/bot", self._gateway_bot)
        r.add_put(api + "/applications/{app}/commands", self._put_commands)
        r.add_put(api + "/applications/{app}/guilds/{guild}/commands", self._put_commands)
        r.add_get(api + "/applications/{app}/commands", self._get_commands)
        r.add_get(api + "/applications/{app}/guilds/{guild}/commands", self._get_commands)
        r.add_post(api + "/channels/{channel}/messages", self._create_message)
        r.add_get(api + "/channels/{channel}/messages/{message}", self._get_message)
        r.add_patch(api + "/channels/{channel}/messages/{message}", self._edit_message)
        r.add_delete(api + "/channels/{channel}/messages/{message}", self._delete_message)
        r.add_post(
            api + "/interactions/{interaction}/{token}/callback",
            self._interaction_callback,
        )
        r.add_route("*", api + "/webhooks/{app}/{token}", self._webhook)
        r.add_route("*", api + "/webhooks/{app}/{token}/messages/{message}", self._webhook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self._stopping.set()  # stalled CDN downloads end
        for session in list(self._sockets):
            await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def upload_limit(self) -> int:
        return self._upload_limit or PREMIUM_TIER_UPLOAD_LIMITS[self.premium_tier]

    # --- middleware: auth and a log of every call ----------------------------------------------
    @web.middleware
    async def _record(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        path = request.path
        if not path.startswith(API_PREFIX):
            return await handler(request)
        record = RecordedRequest(request.method, path[len(API_PREFIX) :], time.monotonic())
        self.requests.append(record)
        uses_bot_token = not (path.startswith((API_PREFIX + "/webhooks/", API_PREFIX + "/interactions/")))
        if uses_bot_token and request.headers.get("Authorization") != f"Bot {self.token}":
            record.status = 401
            return _error(401, 0, "401: Unauthorized")
        request[RECORD] = record
        response = await handler(request)
        record.status = response.status
        return response

    # --- REST: identity and commands ------------------------------------------------------------
    async def _users_me(self, request: web.Request) -> web.Response:
        return _json(self.bot.to_json())

    async def _application(self, request: web.Request) -> web.Response:
        owner = FakeUser(snowflake(), "owner").to_json()
        return _json(
            {
                "id": self.application_id,
                "name": "avatarbot",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": owner,
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
            }
        )

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        return _json(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _put_commands(self, request: web.Request) -> web.Response:
        body = await request.json()
        request[RECORD].json = body
        guild = request.match_info.get("guild")
        stored = []
        for command in body:
            command = dict(command)
            command.setdefault("id", snowflake())
            command["application_id"] = self.application_id
            command.setdefault("description", "")
            command.setdefault("version", snowflake())
            command.setdefault("type", 1)
            command.setdefault("default_member_permissions", None)
            if guild:
                command["guild_id"] = guild
            stored.append(command)
        self.commands[guild] = stored
        return _json(stored)

    async def _get_commands(self, request: web.Request) -> web.Response:
        return _json(self.commands.get(request.match_info.get("guild"), []))

    # --- REST: channel messages (bot token) -----------------------------------------------------
    async def _read_message_body(self, request: web.Request) -> tuple[dict, list[tuple[str, str, bytes]]]:
        if request.content_type.startswith("multipart/"):
            payload: dict = {}
            files = []
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()
                if part.name == "payload_json":
                    payload = json.loads(data)
                else:
                    files.append((part.name, part.filename or "file", bytes(data)))
            request[RECORD].files = files
        else:
            payload = await request.json()
            files = []
        request[RECORD].json = payload
        return payload, files

    async def _create_message(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["channel"]
        if channel_id not in self._channel_ids():
            return _error(404, 10003, "Unknown Channel")
        payload, files = await self._read_message_body(request)
        if files and self.upload_faults:
            status = self.upload_faults.pop(0)
            return _error(status, 0, f"{status}: Server Error")
        if sum(len(data) for _, _, data in files) > self.upload_limit:
            return _error(413, 40005, "Request entity too large")
        nonce = payload.get("nonce")
        if nonce is not None and payload.get("enforce_nonce"):
            existing = self._nonces.get((channel_id, str(nonce)))
            if existing is not None and existing in self.messages:
                request[RECORD].message_id = existing
                return _json(self.messages[existing])
        reference = payload.get("message_reference")
        missing = reference and str(reference.get("message_id")) not in self.messages
        if missing and reference.get("fail_if_not_exists", True):
            return _error(400, 50035, "Invalid Form Body: Unknown message")
        message = self._make_message(
            author=self.bot,
            channel_id=channel_id,
            content=payload.get("content") or "",
            attachments=[self._store_upload(channel_id, name, data) for _, name, data in files],
            reference_id=str(reference["message_id"]) if reference else None,
            components=payload.get("components") or [],
            flags=payload.get("flags") or 0,
        )
        message["nonce"] = nonce
        if nonce is not None:
            self._nonces[(channel_id, str(nonce))] = message["id"]
        self.messages[message["id"]] = message
        request[RECORD].message_id = message["id"]
        await self.dispatch("MESSAGE_CREATE", message)
        if files and self.lose_first_upload_response:
            self.lose_first_upload_response = False
            return _error(502, 0, "502: Bad Gateway")
        return _json(message)

    async def _get_message(self, request: web.Request) -> web.Response:
        message = self.messages.get(request.match_info["message"])
        if message is None or message["channel_id"] != request.match_info["channel"]:
            return _error(404, 10008, "Unknown Message")
        return _json(message)

    async def _edit_message(self, request: web.Request) -> web.Response:
        message = self.messages.get(request.match_info["message"])
        if message is None or message["channel_id"] != request.match_info["channel"]:
            return _error(404, 10008, "Unknown Message")
        if message["author"]["id"] != self.bot.id:
            return _error(403, 50005, "Cannot edit a message authored by another user")
        payload, _ = await self._read_message_body(request)
        self._apply_edit(message, payload)
        return _json(message)

    async def _delete_message(self, request: web.Request) -> web.Response:
        message = self.messages.pop(request.match_info["message"], None)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        self.deleted_message_ids.append(message["id"])
        return web.Response(status=204)

    def _apply_edit(self, message: dict, payload: dict) -> None:
        for key in ("content", "components", "embeds"):
            if key in payload and payload[key] is not None:
                message[key] = payload[key]
        if "attachments" in payload and payload["attachments"] == []:
            message["attachments"] = []
        message["edited_timestamp"] = _now_iso()
        self.edits.append((time.monotonic(), message["id"], payload))

    # --- REST: interactions (interaction token) -------------------------------------------------
    async def _interaction_callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(request.match_info["interaction"])
        if interaction is None or interaction.token != request.match_info["token"]:
            return _error(404, 10062, "Unknown interaction")
        body_at = time.monotonic()
        if body_at - interaction.created_at > self.ack_deadline_s:
            return _error(404, 10062, "Unknown interaction")
        if interaction.callback is not None:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        payload, files = await self._read_message_body(request)
        interaction.callback = payload
        interaction.callback_at = body_at
        kind = payload["type"]
        data = payload.get("data") or {}
        answer: dict = {
            "interaction": {"id": interaction.id, "type": interaction.type},
            "resource": {"type": kind},
        }
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags") or 0)
            message = self._make_message(
                author=self.bot,
                channel_id=interaction.channel_id,
                content=data.get("content") or "",
                attachments=[self._store_upload(interaction.channel_id, n, d) for _, n, d in files],
                components=data.get("components") or [],
                flags=flags,
                interaction=interaction,
            )
            self.messages[message["id"]] = message
            interaction.original_message_id = message["id"]
            answer["interaction"].update(
                response_message_id=message["id"],
                response_message_loading=kind == DEFERRED_CHANNEL_MESSAGE,
                response_message_ephemeral=bool(flags & EPHEMERAL_FLAG),
            )
            answer["resource"]["message"] = message
        elif kind == UPDATE_MESSAGE:
            target = self.messages.get(interaction.payload.get("message", {}).get("id", ""))
            if target is not None:
                self._apply_edit(target, data)
                answer["resource"]["message"] = target
        return _json(answer)

    def _token_alive(self, interaction: FakeInteraction) -> bool:
        return time.monotonic() - interaction.created_at < self.interaction_token_lifetime_s

    async def _webhook(self, request: web.Request) -> web.Response:
        if request.match_info["app"] != self.application_id:
            return _error(404, 10015, "Unknown Webhook")
        interaction = next(
            (i for i in self.interactions.values() if i.token == request.match_info["token"]),
            None,
        )
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        if not self._token_alive(interaction):
            interaction.rejected_webhook_calls += 1
            return _error(401, 50027, "Invalid Webhook Token")
        target = request.match_info.get("message")
        if target == "@original":
            target = interaction.original_message_id
        if request.method == "POST" and target is None:
            payload, files = await self._read_message_body(request)
            message = self._make_message(
                author=self.bot,
                channel_id=interaction.channel_id,
                content=payload.get("content") or "",
                attachments=[self._store_upload(interaction.channel_id, n, d) for _, n, d in files],
                components=payload.get("components") or [],
                flags=int(payload.get("flags") or 0),
                interaction=interaction,
            )
            self.messages[message["id"]] = message
            interaction.followups.append(message)
            return _json(message)
        message = self.messages.get(target or "")
        if message is None:
            return _error(404, 10008, "Unknown Message")
        if request.method == "GET":
            return _json(message)
        if request.method == "PATCH":
            payload, files = await self._read_message_body(request)
            self._apply_edit(message, payload)
            message["flags"] = message.get("flags", 0)
            return _json(message)
        if request.method == "DELETE":
            self.messages.pop(message["id"], None)
            self.deleted_message_ids.append(message["id"])
            return web.Response(status=204)
        return _error(405, 0, "405: Method Not Allowed")

    # --- CDN ------------------------------------------------------------------------------------
    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        stored = self.cdn.get(path)
        if stored is None:
            return web.Response(status=404)
        self.cdn_downloads.append(path)
        data, content_type = stored
        if self.cdn_mode == "stall":
            await self._stopping.wait()
            return web.Response(status=503)
        if self.cdn_mode == "trickle":
            response = web.StreamResponse(headers={"Content-Type": content_type})
            await response.prepare(request)
            while not self._stopping.is_set():
                await response.write(b"x")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)
            return response
        return web.Response(body=data, headers={"Content-Type": content_type})

    def _store_upload(self, channel_id: str, filename: str, data: bytes) -> dict:
        content_type = "video/mp4" if filename.endswith(".mp4") else "application/octet-stream"
        return self.add_attachment(data, filename, content_type, channel_id=channel_id)

    # --- gateway --------------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        session = _GatewaySession(self, ws)
        self._sockets.append(session)
        try:
            await session.run()
        finally:
            self._sockets.remove(session)
        return ws

    async def dispatch(self, event: str, data: dict) -> None:
        """Send an event to every identified gateway session (as Discord would)."""
        for session in list(self._sockets):
            if session.ready:
                await session.send_dispatch(event, data)

    def guild_json(self) -> dict:
        everyone = {
            "id": self.guild_id,
            "name": "@everyone",
            "permissions": str(MEMBER_PERMISSIONS),
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        channels = [
            {
                "id": self.channel_id,
                "type": 0,
                "name": "general",
                "position": 0,
                "permission_overwrites": [],
            },
            {
                "id": self.other_channel_id,
                "type": 0,
                "name": "random",
                "position": 1,
                "permission_overwrites": [],
            },
        ]
        thread = {
            "id": self.thread_id,
            "type": 11,
            "name": "a thread",
            "parent_id": self.channel_id,
            "owner_id": self.bot.id,
            "guild_id": self.guild_id,
            "message_count": 0,
            "member_count": 1,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _now_iso(),
                "locked": False,
            },
        }
        return {
            "id": self.guild_id,
            "name": "Test Server",
            "icon": None,
            "owner_id": snowflake(),
            "premium_tier": self.premium_tier,
            "roles": [everyone],
            "channels": channels,
            "threads": [thread],
            "members": [self.bot.member_json()],
            "member_count": 1,
            "features": [],
            "preferred_locale": self.preferred_locale,
            "emojis": [],
            "stickers": [],
            "unavailable": False,
            "large": False,
            "joined_at": "2024-01-01T00:00:00+00:00",
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
        }

    def _channel_ids(self) -> set[str]:
        return {self.channel_id, self.other_channel_id, self.thread_id}

    # --- helpers for tests ----------------------------------------------------------------------
    def add_user(self, username: str, *, permissions: int = MEMBER_PERMISSIONS) -> FakeUser:
        user = FakeUser(snowflake(), username, permissions=permissions)
        self.users[user.id] = user
        return user

    def add_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str | None,
        *,
        channel_id: str | None = None,
        declared_size: int | None = None,
        duration_secs: float | None = None,
        voice_message: bool = False,
        width: int | None = None,
        height: int | None = None,
    ) -> dict:
        """Put a file on the CDN and return its attachment object (metadata as Discord sends it)."""
        attachment_id = snowflake()
        path = f"attachments/{channel_id or self.channel_id}/{attachment_id}/{filename}"
        self.cdn[path] = (data, content_type or "application/octet-stream")
        url = f"{self.base_url}/cdn/{path}"
        attachment: dict = {
            "id": attachment_id,
            "filename": filename,
            "size": len(data) if declared_size is None else declared_size,
            "url": url,
            "proxy_url": url,
        }
        if content_type is not None:
            attachment["content_type"] = content_type
        if width is not None:
            attachment["width"], attachment["height"] = width, height
        if voice_message or duration_secs is not None:
            attachment["duration_secs"] = duration_secs or 1.0
        if voice_message:
            attachment["waveform"] = base64.b64encode(bytes(range(0, 256, 4))).decode()
            attachment["flags"] = 0
        return attachment

    def _make_message(
        self,
        *,
        author: FakeUser,
        channel_id: str,
        content: str,
        attachments: list[dict],
        reference_id: str | None = None,
        components: list | None = None,
        flags: int = 0,
        mentions: list[FakeUser] = (),
        interaction: FakeInteraction | None = None,
    ) -> dict:
        message = {
            "id": snowflake(),
            "channel_id": channel_id,
            "guild_id": self.guild_id,
            "author": author.to_json(),
            "member": author.member_json(with_user=False),
            "content": content,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [user.to_json() for user in mentions],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": [],
            "pinned": False,
            "type": 19 if reference_id else 0,
            "flags": flags,
            "components": components or [],
        }
        if reference_id:
            message["message_reference"] = {
                "type": 0,
                "message_id": reference_id,
                "channel_id": channel_id,
                "guild_id": self.guild_id,
            }
            if reference_id in self.messages:
                message["referenced_message"] = self.messages[reference_id]
        if interaction is not None:
            message["webhook_id"] = self.application_id
            message["application_id"] = self.application_id
        return message

    async def post_message(
        self,
        author: FakeUser,
        *,
        content: str = "",
        attachments: list[dict] = (),
        reply_to: dict | None = None,
        channel_id: str | None = None,
        voice_message: bool = False,
        mention_bot: bool = False,
    ) -> dict:
        """A user posts a message: stored, and sent to the bot as MESSAGE_CREATE."""
        message = self._make_message(
            author=author,
            channel_id=channel_id or (reply_to["channel_id"] if reply_to else self.channel_id),
            content=(f"<@{self.bot.id}> " + content) if mention_bot else content,
            attachments=list(attachments),
            reference_id=reply_to["id"] if reply_to else None,
            flags=VOICE_MESSAGE_FLAG if voice_message else 0,
            mentions=[self.bot] if mention_bot else [],
        )
        self.messages[message["id"]] = message
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    def _interaction(
        self,
        kind: int,
        user: FakeUser,
        channel_id: str | None,
        data: dict,
        **extra: Any,
    ) -> dict:
        channel_id = channel_id or self.channel_id
        interaction_id = snowflake()
        channel_type = 11 if channel_id == self.thread_id else 0
        channel = {
            "id": channel_id,
            "type": channel_type,
            "name": "channel",
            "guild_id": self.guild_id,
            "position": 0,
        }
        if channel_type == 11:
            channel.update(
                parent_id=self.channel_id,
                thread_metadata={
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": _now_iso(),
                    "locked": False,
                },
            )
        payload = {
            "id": interaction_id,
            "application_id": self.application_id,
            "type": kind,
            "token": "itok-" + snowflake(),
            "version": 1,
            "guild_id": self.guild_id,
            "channel_id": channel_id,
            "channel": channel,
            "member": user.member_json(with_permissions=True),
            "app_permissions": str(self.app_permissions),
            "locale": "en-US",
            "guild_locale": self.preferred_locale,
            "entitlements": [],
            "authorizing_integration_owners": {"0": self.guild_id},
            "context": 0,
            "attachment_size_limit": self.upload_limit,
            "data": data,
            **extra,
        }
        self.interactions[interaction_id] = FakeInteraction(
            id=interaction_id,
            token=payload["token"],
            type=kind,
            created_at=time.monotonic(),
            user_id=user.id,
            channel_id=channel_id,
            payload=payload,
        )
        return payload

    def _command_id(self, name: str, kind: int) -> str:
        for commands in self.commands.values():
            for command in commands:
                if command["name"] == name and command.get("type", 1) == kind:
                    return command["id"]
        raise KeyError(f"command {name!r} was never synced")

    async def slash_command(
        self,
        user: FakeUser,
        name: str,
        options: dict[str, Any],
        *,
        attachments: dict[str, dict] | None = None,
        channel_id: str | None = None,
        subcommand: str | None = None,
        channels: dict[str, str] | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user runs a slash command. `attachments` maps option name -> attachment object;
        `locale` is the user's client language (Discord sends it with every interaction)."""
        option_list: list[dict] = []
        resolved: dict[str, dict] = {}
        for key, value in options.items():
            option_list.append({"name": key, "type": _option_type(value), "value": value})
        for key, attachment in (attachments or {}).items():
            option_list.append({"name": key, "type": 11, "value": attachment["id"]})
            resolved.setdefault("attachments", {})[attachment["id"]] = attachment
        for key, channel in (channels or {}).items():
            option_list.append({"name": key, "type": 7, "value": channel})
            resolved.setdefault("channels", {})[channel] = {
                "id": channel,
                "type": 0,
                "name": "channel",
                "permissions": str(MEMBER_PERMISSIONS),
            }
        if subcommand:
            option_list = [{"name": subcommand, "type": 1, "options": option_list}]
        data = {
            "id": self._command_id(name, 1),
            "name": name,
            "type": 1,
            "options": option_list,
        }
        if resolved:
            data["resolved"] = resolved
        payload = self._interaction(APPLICATION_COMMAND, user, channel_id, data, locale=locale)
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["id"]]

    async def autocomplete(self, user: FakeUser, name: str, options: dict[str, Any], focused: str) -> FakeInteraction:
        option_list = [
            {
                "name": key,
                "type": 3,
                "value": value,
                **({"focused": True} if key == focused else {}),
            }
            for key, value in options.items()
        ]
        data = {
            "id": self._command_id(name, 1),
            "name": name,
            "type": 1,
            "options": option_list,
        }
        payload = self._interaction(AUTOCOMPLETE, user, None, data)
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["id"]]

    async def message_command(self, user: FakeUser, name: str, target: dict) -> FakeInteraction:
        """A user right-clicks `target` and picks Apps -> `name`."""
        data = {
            "id": self._command_id(name, 3),
            "name": name,
            "type": 3,
            "target_id": target["id"],
            "resolved": {"messages": {target["id"]: target}},
        }
        payload = self._interaction(APPLICATION_COMMAND, user, target["channel_id"], data)
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["id"]]

    async def submit_modal(
        self, user: FakeUser, custom_id: str, values: dict[str, str], channel_id: str
    ) -> FakeInteraction:
        rows = [
            {"type": 1, "components": [{"type": 4, "custom_id": key, "value": value}]} for key, value in values.items()
        ]
        payload = self._interaction(MODAL_SUBMIT, user, channel_id, {"custom_id": custom_id, "components": rows})
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["id"]]

    async def click(self, user: FakeUser, message: dict, custom_id: str, locale: str = "en-US") -> FakeInteraction:
        data = {"custom_id": custom_id, "component_type": 2}
        payload = self._interaction(
            MESSAGE_COMPONENT, user, message["channel_id"], data, message=message, locale=locale
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["id"]]

    def bot_messages(self, channel_id: str | None = None) -> list[dict]:
        return [
            m
            for m in self.messages.values()
            if m["author"]["id"] == self.bot.id
            and "webhook_id" not in m
            and (channel_id is None or m["channel_id"] == channel_id)
        ]

    def posts_with_files(self) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.method == "POST" and r.path.startswith("/channels/") and r.files and r.status == 200
        ]

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        timeout: float = 60.0,
        what: str = "condition",
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _option_type(value: Any) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    return 3


class _GatewaySession:
    """One bot connection: HELLO, then IDENTIFY -> READY + GUILD_CREATE, heartbeats, dispatches."""

    def __init__(self, server: FakeDiscord, ws: web.WebSocketResponse):
        self.server = server
        self.ws = ws
        self.sequence = 0
        self.ready = False
        self.intents = 0
        self.session_id = "session-" + snowflake()

    async def run(self) -> None:
        await self.ws.send_json({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                continue
            packet = json.loads(msg.data)
            op, data = packet.get("op"), packet.get("d")
            if op == 1:  # heartbeat
                await self.ws.send_json({"op": 11})
            elif op == 2:  # identify
                await self._identify(data)
            elif op == 6:  # resume: sessions are not kept, so ask for a fresh identify
                await self.ws.send_json({"op": 9, "d": False})

    async def _identify(self, data: dict) -> None:
        if data.get("token") != self.server.token:
            await self.ws.close(code=4004, message=b"Authentication failed.")
            return
        self.intents = int(data.get("intents", 0))
        if self.intents & MESSAGE_CONTENT_INTENT and not self.server.message_content_allowed:
            await self.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        self.server.identified.append({"intents": self.intents, "at": time.monotonic()})
        self.ready = True
        await self.send_dispatch(
            "READY",
            {
                "v": 10,
                "user": self.server.bot.to_json(),
                "guilds": [{"id": self.server.guild_id, "unavailable": True}],
                "session_id": self.session_id,
                "resume_gateway_url": self.server.gateway_url,
                "application": {"id": self.server.application_id, "flags": 0},
                "shard": [0, 1],
            },
        )
        await self.send_dispatch("GUILD_CREATE", self.server.guild_json())

    async def send_dispatch(self, event: str, data: dict) -> None:
        if event == "MESSAGE_CREATE" and not self.intents & MESSAGE_CONTENT_INTENT:
            data = _without_privileged_content(data, self.server.bot.id)
        self.sequence += 1
        if not self.ws.closed:
            await self.ws.send_json({"op": 0, "t": event, "s": self.sequence, "d": data})


def _without_privileged_content(message: dict, bot_id: str) -> dict:
    """Discord blanks content, attachments, embeds and components for bots without the intent,
    except on messages that mention the bot and the bot's own messages."""
    mentioned = any(user["id"] == bot_id for user in message.get("mentions", []))
    if mentioned or message["author"]["id"] == bot_id:
        return message
    return {**message, "content": "", "attachments": [], "embeds": [], "components": []}
