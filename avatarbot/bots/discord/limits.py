"""Discord's limits and timings, named (values from Discord's developer documentation)."""

from __future__ import annotations

# An interaction must be answered within 3 s, or Discord shows "The application did not respond".
INTERACTION_ACK_S = 3.0
# An interaction token (followups, edit_original_response) works for 15 minutes only. Renders can
# take longer, so progress edits and the final post use the bot token's channel endpoints.
INTERACTION_TOKEN_LIFETIME_S = 15 * 60

# Upload limit on a server without boosts (`discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES`);
# boosted servers allow more (`Guild.filesize_limit`, `Interaction.filesize_limit`).
DEFAULT_UPLOAD_LIMIT_BYTES = 10 * 1024 * 1024

# Attachments are fetched only from Discord's own CDN. Other hosts (a local proxy, the tests'
# fake server) must be named in settings.discord.cdn_hosts.
DISCORD_CDN_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")

# A message nonce is at most 25 characters.
MAX_NONCE_CHARS = 25
# Autocomplete answers hold at most 25 choices.
MAX_AUTOCOMPLETE_CHOICES = 25
# A text input in a modal holds at most 4000 characters.
MAX_MODAL_TEXT_CHARS = 4000

# Permission bit for "moderator" actions (delete anyone's clip, cancel anyone's job).
MODERATOR_PERMISSION = "manage_messages"
