"""The Discord client: connection settings, intents, command sync, and the wiring of the parts.

`commands.py` declares the commands, `requests.py` turns events into flow requests,
`delivery.py` follows the jobs, `buttons.py` holds the persistent buttons and the modal.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import aiohttp
import discord
import yarl
from discord import app_commands

from avatarbot.bots.discord import commands
from avatarbot.bots.discord.buttons import DYNAMIC_ITEMS
from avatarbot.bots.discord.requests import Requests
from avatarbot.bots.discord.surface import DiscordSurface
from avatarbot.observability.endpoints import start_bot_endpoints
from avatarbot.settings import Settings

log = logging.getLogger(__name__)


def configure_endpoints(settings: Settings) -> None:
    """Point discord.py at a REST proxy / gateway from the settings.

    discord.py keeps both as class attributes, so this is per process: fine for a bot, and
    what the tests use to reach their local fake Discord.
    """
    if settings.discord.api_base:
        discord.http.Route.BASE = settings.discord.api_base.rstrip("/")
    if settings.discord.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord.gateway_url)


def build_intents(settings: Settings) -> discord.Intents:
    """Only what the bot uses. Message Content is privileged: it must also be switched on in the
    developer portal, and without it the bot sees attachments only on messages that mention it."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = settings.discord.message_content_intent
    return intents


class AvatarBot(discord.Client):
    def __init__(self, settings: Settings, *, flow=None) -> None:
        super().__init__(
            intents=build_intents(settings),
            # Nobody gets pinged unless a message says so (the requester, on their clip).
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self.flow = flow
        self._owns_flow = flow is None
        self.tree = app_commands.CommandTree(self)
        self.tree.on_error = self._on_command_error
        self.requests = Requests(self)
        self.lifecycle = None  # the flow's Lifecycle for this surface, made in setup_hook
        self.endpoints = None  # /healthz, /readyz, /metrics when [metrics] port is set
        self.http_session: aiohttp.ClientSession | None = None
        commands.register(self.tree, self)

    async def setup_hook(self) -> None:
        if self.flow is None:
            from avatarbot.service.flow import RequestFlow

            self.flow = RequestFlow.from_settings(self.settings)
        # Buttons on messages from earlier runs keep working: Discord sends their custom_id,
        # which these templates parse back into a job id.
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        self.http_session = aiohttp.ClientSession()
        await self.tree.set_translator(commands.MessagesTranslator())
        await self.sync_commands()
        from avatarbot.service.lifecycle import Lifecycle

        self.lifecycle = Lifecycle(self.flow, DiscordSurface(self))
        self.lifecycle.start()
        self.endpoints = start_bot_endpoints(self.settings, "discord", self.connected)

    def connected(self) -> bool:
        """READY received and the gateway socket open now (is_ready() alone stays true while
        discord.py reconnects)."""
        ws = self.ws
        return self.is_ready() and not self.is_closed() and ws is not None and ws.open

    async def sync_commands(self) -> None:
        """Guild sync is instant (development); global sync can take a while to show (production)."""
        try:
            if self.settings.discord.sync_guilds:
                for guild_id in self.settings.discord.sync_guilds:
                    guild = discord.Object(guild_id)
                    self.tree.copy_global_to(guild=guild)
                    await self.tree.sync(guild=guild)
                    log.info("commands synced to guild %s", guild_id)
            else:
                await self.tree.sync()
                log.info("commands synced globally")
        except discord.HTTPException as error:
            log.error("command sync failed (%s); the previous commands stay", error.status)

    async def close(self) -> None:
        if self.endpoints is not None:
            self.endpoints.stop()
            self.endpoints = None
        if self.lifecycle is not None:
            await self.lifecycle.stop()
        if self.http_session is not None:
            await self.http_session.close()
        await super().close()
        if self._owns_flow and self.flow is not None:
            await self.flow.close()

    async def on_ready(self) -> None:
        log.info(
            "Discord bot ready as %s (%s) in %d servers",
            self.user,
            self.user.id,
            len(self.guilds),
        )

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        try:
            await self.requests.from_reply(message)
        except Exception:
            log.exception("handling message %s failed", message.id)

    async def _on_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        from avatarbot import messages

        log.error(
            "command %s failed",
            interaction.command and interaction.command.name,
            exc_info=error,
        )
        sorry = messages.text("unexpected", messages.resolve(interaction.locale.value if interaction.locale else None))
        try:
            if interaction.response.is_done():
                await interaction.followup.send(sorry, ephemeral=True)
            else:
                await interaction.response.send_message(sorry, ephemeral=True)
        except discord.HTTPException:
            pass


async def serve(settings: Settings, token: str, *, flow=None) -> None:
    """Run the bot until it is closed (for `avatarbot run`, which runs several services)."""
    configure_endpoints(settings)
    async with AvatarBot(settings, flow=flow) as bot:
        await bot.start(token, reconnect=True)


def run(settings: Settings) -> int:
    token = settings.discord.resolved_token()
    if not token:
        print(
            "avatarbot: no Discord token. Set discord.token (or discord.token_file) in the config, "
            "or AVATARBOT_DISCORD__TOKEN; see the README's Discord section.",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(serve(settings, token))
    except discord.LoginFailure:
        log.error("Discord refused the bot token; copy it again from the developer portal (Bot → Reset Token)")
        return 2
    except discord.PrivilegedIntentsRequired:
        log.error(
            "Discord refused the Message Content intent: switch it on in the developer portal "
            "(Bot → Privileged Gateway Intents) or set discord.message_content_intent = false"
        )
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
