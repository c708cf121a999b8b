"""The Telegram adapter: PTB handlers that turn updates into request-flow calls.

Everything about *what* a request is and how it is rendered lives in `avatarbot.service.flow`;
reading a message is `requests.py`, downloads `files.py`, and posting progress and clips
`surface.py`. This module wires them into a PTB Application and answers commands and buttons.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from datetime import timedelta

from telegram import BotCommand, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, MessageLimit
from telegram.error import BadRequest, NetworkError, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from avatarbot import messages
from avatarbot.errors import UnknownVoiceError
from avatarbot.observability.endpoints import start_bot_endpoints
from avatarbot.service import replies
from avatarbot.service.flow import ReplyTarget, Requester, RequestFlow
from avatarbot.service.lifecycle import Lifecycle
from avatarbot.service.traits import Press, Source
from avatarbot.settings import Settings
from avatarbot.tasks.jobs import ACTIVE_STATES
from avatarbot.vocab import Platform, Quality

from . import buttons, files, ratelimit, redact, retries
from .requests import Attachment, Parsed, parse
from .surface import TelegramAnswer, TelegramSurface, send_reply

PLATFORM = Platform.TELEGRAM

log = logging.getLogger(__name__)

# 429s are waited out and retried by the rate limiter up to this many times.
RATE_LIMIT_RETRIES = 3
# Starting while the Bot API is unreachable: retry getMe, pausing at most this long.
STARTUP_BACKOFF_MAX_S = 60.0
# Updates handled at once. A request holds its slot while its files are fetched and decoded
# (seconds under load); PTB's default of 256 made quick answers wait for a slot behind them.
# The intake quota check bounds how many of those can be in progress per person.
MAX_CONCURRENT_UPDATES = 2048
# Long-poll timeout for getUpdates.
POLL_TIMEOUT = timedelta(seconds=10)
# /readyz: connected once no getUpdates has failed for a long poll plus this long.
POLL_ERROR_GRACE_S = 5.0
ADMIN_STATUSES = {ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER}


def commands(lang: str) -> list[BotCommand]:
    """The command menu in one language (setMyCommands, per `language_code`)."""
    return [BotCommand(name, description) for name, description in messages.telegram_commands(lang).items()]


class TelegramBot:
    """One bot process. `build_application()` gives the PTB Application (tests drive it against
    a fake Bot API server); `running()` also starts polling and the job watcher."""

    def __init__(self, settings: Settings, flow: RequestFlow | None = None):
        self.settings = settings
        self.token = settings.telegram.resolved_token()
        if not self.token:
            raise ValueError("telegram.token (or telegram.token_file) is not set")
        redact.install(self.token)
        self._owns_flow = flow is None
        self.flow = flow or RequestFlow.from_settings(settings)
        self.application: Application | None = None
        self.lifecycle: Lifecycle | None = None
        self._last_poll_error: float | None = None  # time.monotonic() of the last failed getUpdates

    # --- wiring ----------------------------------------------------------------------------------
    def build_application(self) -> Application:
        tg = self.settings.telegram
        application = (
            Application.builder()
            .token(self.token)
            .base_url(tg.base_url)
            .base_file_url(tg.base_file_url)
            .local_mode(tg.local_mode)
            .rate_limiter(ratelimit.PriorityRateLimiter(max_retries=RATE_LIMIT_RETRIES))
            .concurrent_updates(MAX_CONCURRENT_UPDATES)
            .build()
        )
        application.add_handler(TypeHandler(Update, self._gate), group=-1)
        application.add_handler(CommandHandler("start", self._on_start))
        application.add_handler(CommandHandler("help", self._on_help))
        application.add_handler(CommandHandler("voices", self._on_voices))
        application.add_handler(CommandHandler("cancel", self._on_cancel))
        application.add_handler(CommandHandler("status", self._on_status))
        application.add_handler(CommandHandler("settings", self._on_settings))
        application.add_handler(CallbackQueryHandler(self._on_button))
        application.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self._on_message))
        application.add_error_handler(self._on_error)
        self.application = application
        return application

    @asynccontextmanager
    async def running(self):
        """Poll for updates and deliver jobs until the block exits."""
        application = self.application or self.build_application()
        await self._initialize(application)
        self.lifecycle = Lifecycle(self.flow, TelegramSurface(application.bot, self.settings))
        await self._set_commands(application)
        await application.start()
        await application.updater.start_polling(
            timeout=POLL_TIMEOUT, bootstrap_retries=-1, error_callback=self._on_poll_error
        )
        self.lifecycle.start()
        log.info("telegram bot @%s is running", application.bot.username)
        endpoints = start_bot_endpoints(self.settings, "telegram", self.connected)
        try:
            yield self
        finally:
            if endpoints is not None:
                endpoints.stop()
            await self.lifecycle.stop()
            if application.updater.running:
                await application.updater.stop()
            await application.stop()
            await application.shutdown()
            self.application = None
            if self._owns_flow:
                await self.flow.close()

    @staticmethod
    async def _set_commands(application: Application) -> None:
        """The menu in English for everyone, and in each other shipped language for users whose
        app is set to it (Telegram picks by the user's two-letter language code)."""
        for lang in messages.LANGUAGES:
            code = None if lang == messages.ENGLISH else lang.split("-")[0].lower()
            try:
                await application.bot.set_my_commands(commands(lang), language_code=code)
            except TelegramError as error:
                log.warning("could not set the command list (%s): %s", lang, error)

    @staticmethod
    async def _initialize(application: Application) -> None:
        """getMe until the Bot API answers: a bot started before its network is up waits.
        A wrong token (InvalidToken) is not a network error and ends the start at once."""
        pause = retries.FIRST_PAUSE_S
        while True:
            try:
                await application.initialize()
                return
            except NetworkError as error:
                if isinstance(error, BadRequest):
                    raise
                log.warning("Bot API unreachable (%s); trying again in %.0f s", error, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, STARTUP_BACKOFF_MAX_S)

    def _on_poll_error(self, error: TelegramError) -> None:
        # PTB retries getUpdates with backoff on its own; we only keep the log readable.
        log.warning("polling for updates failed (retrying): %s", error)
        self._last_poll_error = time.monotonic()

    def connected(self) -> bool:
        """Polling, and no getUpdates failed within the last long poll and a bit: PTB reports
        failed polls only, so a quiet error callback is what a working connection looks like."""
        application = self.application
        if application is None or application.updater is None or not application.updater.running:
            return False
        last_error = self._last_poll_error
        return last_error is None or time.monotonic() - last_error > POLL_TIMEOUT.total_seconds() + POLL_ERROR_GRACE_S

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Anything a handler didn't expect: log it, apologise, keep going."""
        log.error("update %s raised", getattr(update, "update_id", "?"), exc_info=context.error)
        if not isinstance(update, Update):
            return
        user = update.effective_user
        lang = messages.resolve(user.language_code if user else None)
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(messages.text("unexpected", lang))
            elif update.effective_message is not None:
                await self._reply(update.effective_message, messages.text("unexpected", lang))
        except TelegramError as error:
            log.info("could not apologise for update %s: %s", update.update_id, error)

    async def _gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer only in allowed chats (when a list is set) and bot admins' private chats."""
        allowed = self.settings.telegram.allowed_chats
        chat = update.effective_chat
        if not allowed or chat is None or chat.id in allowed:
            return
        user = update.effective_user
        if chat.type == ChatType.PRIVATE and user is not None and user.id in self.settings.telegram.admins:
            return
        raise ApplicationHandlerStop

    # --- small helpers ---------------------------------------------------------------------------
    async def _reply(self, message: Message, text: str, **kwargs) -> Message | None:
        """A reply in the same chat and topic. Failing to say something is logged, not raised."""
        try:
            return await send_reply(message, text, **kwargs)
        except TelegramError as error:
            log.warning("reply in chat %s failed: %s", message.chat_id, error)
            return None

    async def _is_chat_admin(self, chat_id: int, chat_type: str, user_id: int) -> bool:
        if user_id in self.settings.telegram.admins:
            return True
        if chat_type == ChatType.PRIVATE:
            return chat_id == user_id
        try:
            member = await self.application.bot.get_chat_member(chat_id, user_id)
        except TelegramError as error:
            log.info("getChatMember(%s, %s) failed: %s", chat_id, user_id, error)
            return False
        return member.status in ADMIN_STATUSES

    @staticmethod
    def _requester(message: Message) -> Requester:
        user = message.from_user
        server = None if message.chat.type == ChatType.PRIVATE else str(message.chat_id)
        return Requester(
            platform=PLATFORM, user_id=str(user.id), server_id=server, display_name=user.full_name if user else "",
            language=user.language_code if user else None,
        )  # fmt: skip

    async def _language(self, message: Message) -> str:
        """The language to answer this message in: the chat's setting, else the sender's app."""
        config = await self.flow.chat_config.get(PLATFORM, str(message.chat_id))
        return replies.for_request(self._requester(message), config)

    # --- commands --------------------------------------------------------------------------------
    async def _on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        await self._reply(message, messages.text("telegram_start", await self._language(message)))

    async def _on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        limits = self.settings.limits
        message = update.effective_message
        await self._reply(
            message,
            messages.telegram_help(
                limits.max_audio_seconds, limits.max_text_chars, files.download_limit(self.settings),
                await self._language(message),
            ),
        )  # fmt: skip

    async def _on_voices(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        from avatarbot.tts.voices import list_voices

        header = messages.text("telegram_voices_header", await self._language(update.effective_message))
        lines = [header, *(voice.label for voice in list_voices())]
        chunk: list[str] = []
        for line in lines:  # one message holds 4096 characters
            if sum(len(x) + 1 for x in chunk) + len(line) > MessageLimit.MAX_TEXT_LENGTH:
                await self._reply(update.effective_message, "\n".join(chunk))
                chunk = []
            chunk.append(line)
        await self._reply(update.effective_message, "\n".join(chunk))

    async def _active_job(self, message: Message):
        """The newest unfinished job of this user in this chat."""
        jobs = await asyncio.to_thread(self.flow.store.list_jobs, PLATFORM, ACTIVE_STATES)
        mine = [
            job
            for job in jobs
            if job.requester.user_id == str(message.from_user.id) and job.reply_target.chat_id == str(message.chat_id)
        ]
        return mine[-1] if mine else None

    async def _on_cancel(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        job = await self._active_job(message)
        lang = await self._language(message)
        if job is None:
            await self._reply(message, messages.text("telegram_nothing_to_cancel", lang))
            return
        cancelled = await self.flow.cancel(job.id, str(message.from_user.id))
        # the job may have finished between the lookup and the cancel (the flow's rule for a press)
        await self._reply(message, messages.text("cancelling" if cancelled else "already_finished", lang))

    async def _on_status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        job = await self._active_job(message)
        if job is None:
            await self._reply(message, messages.text("telegram_nothing_to_cancel", await self._language(message)))
            return
        await self._reply(message, replies.status(job))

    async def _on_settings(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        chat = message.chat
        current = await self.flow.chat_config.get(PLATFORM, str(chat.id))
        lang = replies.for_request(self._requester(message), current)
        args = context.args or []
        if not args:
            await self._reply(
                message,
                messages.telegram_settings(
                    current.default_voice or self.settings.tts.default_voice,
                    current.quality or self.settings.render.quality,
                    current.caption_requests,
                    current.clip_captions,
                    current.language,
                    lang,
                ),
            )
            return
        if not await self._is_chat_admin(chat.id, chat.type, message.from_user.id):
            await self._reply(message, messages.text("telegram_settings_admins_only", lang))
            return
        name, value = args[0].lower(), " ".join(args[1:]).strip()
        if name == "voice" and value:
            from avatarbot.tts.voices import find_voice

            try:
                voice = find_voice(value)
            except UnknownVoiceError as error:
                await self._reply(message, messages.for_error(error, lang))
                return
            await self.flow.chat_config.update(PLATFORM, str(chat.id), default_voice=voice.name)
        elif name == "quality" and value.lower() in set(Quality):
            await self.flow.chat_config.update(PLATFORM, str(chat.id), quality=value.lower())
        elif name == "captions" and value.lower() in ("on", "off"):
            await self.flow.chat_config.update(PLATFORM, str(chat.id), caption_requests=value.lower() == "on")
        elif name == "clipcaption" and value.lower() in ("on", "off"):
            await self.flow.chat_config.update(PLATFORM, str(chat.id), clip_captions=value.lower() == "on")
        elif name == "language" and (value.lower() == "auto" or messages.known(value)):
            language = None if value.lower() == "auto" else messages.known(value)
            await self.flow.chat_config.update(PLATFORM, str(chat.id), language=language)
            lang = language or messages.resolve(message.from_user.language_code)
        else:
            await self._reply(message, messages.settings_usage(lang))
            return
        await self._reply(message, messages.text("settings_saved", lang))

    # --- requests --------------------------------------------------------------------------------
    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None or message.from_user.is_bot:
            return
        config = await self.flow.chat_config.get(PLATFORM, str(message.chat_id))
        bot = context.bot
        parsed = parse(message, bot.username, captions_allowed=config.caption_requests, bot_id=bot.id)
        private = message.chat.type == ChatType.PRIVATE
        if parsed.kind == "ignore":
            return
        lang = replies.for_request(self._requester(message), config)
        if parsed.kind == "photo_only":
            if private:
                await self._reply(message, messages.text("telegram_photo_hint", lang))
            return
        if parsed.kind == "help":
            await self._reply(message, messages.text("telegram_animate_help", lang))
            return
        if parsed.kind == "no_photo":
            # In a group, people reply to each other with voice notes all day: only speak up
            # when the voice note answers one of our own messages.
            if private or parsed.replied_to_bot:
                await self._reply(message, messages.text("telegram_reply_to_a_photo", lang))
            return
        await self._request(message, parsed)

    async def _request(self, message: Message, parsed: Parsed) -> None:
        reply_to = ReplyTarget(
            chat_id=str(message.chat_id),
            message_id=str(message.message_id),
            thread_id=str(message.message_thread_id) if message.is_topic_message else None,
        )
        await self.lifecycle.handle_request(
            TelegramAnswer(message),
            self._requester(message),
            reply_to,
            self._source(message, parsed.photo),
            self._source(message, parsed.sound) if parsed.sound is not None else None,
            parsed.text,
            platform_max_bytes=files.download_limit(self.settings),
        )

    def _source(self, message: Message, attachment: Attachment) -> Source:
        bot = message.get_bot()

        async def fetch(cap: int) -> bytes:
            return await files.fetch(bot, attachment, self.settings, cap)

        return Source(
            fetch=fetch,
            declared_bytes=attachment.file_size,
            duration_s=attachment.duration,
            name=f"{attachment.kind} {attachment.file_id}",
        )

    # --- buttons ---------------------------------------------------------------------------------
    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        press = buttons.decode(query.data)
        if press is None or query.message is None:
            await query.answer()
            return
        chat = query.message.chat
        user = query.from_user
        server = None if chat.type == ChatType.PRIVATE else str(chat.id)
        requester = Requester(
            platform=PLATFORM, user_id=str(user.id), server_id=server, display_name=user.full_name,
            language=user.language_code,
        )  # fmt: skip

        async def is_moderator() -> bool:
            return await self._is_chat_admin(chat.id, chat.type, user.id)

        outcome = await self.lifecycle.press(
            Press(press.action, press.job_id, str(chat.id), str(query.message.message_id), requester, is_moderator)
        )
        if outcome.delete_message:
            try:
                await query.message.delete()
            except TelegramError as error:
                log.info("deleting message %s in %s failed: %s", query.message.message_id, chat.id, error)
        await query.answer(outcome.text[:200])


def build_application(settings: Settings, flow: RequestFlow | None = None) -> Application:
    """The PTB Application for these settings (handlers wired; not started)."""
    return TelegramBot(settings, flow).build_application()


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the bot until `stop` is set (forever when None)."""
    bot = TelegramBot(settings)
    async with bot.running():
        await (stop or asyncio.Event()).wait()


def run_telegram(settings: Settings) -> int:
    """`avatarbot telegram`: run until Ctrl-C / SIGTERM."""
    import signal

    # httpx logs every request URL (which holds the token) at INFO; the redaction hides the
    # token, and this keeps the log from filling with getUpdates lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, stop)

    asyncio.run(main())
    return 0
