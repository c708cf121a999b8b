"""Every sentence a user can read, in one place, so wording and translation have one home.

Plain text only (no Markdown): each adapter escapes or formats it for its platform. Keep them
short, friendly, and say what to do next. Operators' log lines do not belong here.
"""

from __future__ import annotations

from avatarbot.vocab import Stage


def _seconds(value: float) -> str:
    if value >= 120:
        return f"{value / 60:g} minutes"
    return f"{value:g} seconds"


def _megabytes(n_bytes: int) -> str:
    """In the unit the limit was set in: Discord's are binary (10 MiB), Telegram's decimal (20 MB)."""
    if n_bytes % (1024 * 1024) == 0:
        return f"{n_bytes // (1024 * 1024)} MiB"
    return f"{n_bytes / 1_000_000:.3g} MB"


# --- files ---------------------------------------------------------------------------------------
EMPTY_FILE = "That file is empty. Please send it again."
DOWNLOAD_FAILED = "I couldn't fetch that file. Please send it again."


def file_too_big(limit_bytes: int) -> str:
    return f"That file is too big. The limit is {_megabytes(limit_bytes)}."


# --- images --------------------------------------------------------------------------------------
NOT_AN_IMAGE = "That doesn't look like a picture. Send a photo (JPEG, PNG or WebP)."
TRUNCATED_IMAGE = "That photo looks cut off or damaged. Please send it again."
ANIMATED_IMAGE = "That's an animation. Send a still photo instead."
UNSUPPORTED_IMAGE = "I can't read that image format. Send a JPEG, PNG or WebP photo."


def image_too_large(pixels: int, limit_pixels: int) -> str:
    return (
        f"That photo is too large ({pixels / 1e6:.0f} megapixels; the limit is "
        f"{limit_pixels / 1e6:.0f}). Send a smaller one."
    )


def image_too_small(width: int, height: int, min_side: int) -> str:
    return f"That photo is too small ({width}x{height}). It needs to be at least {min_side} pixels on each side."


NO_FACE_NOTE = "I couldn't find a face in that photo, so the whole picture moves instead."


# --- audio ---------------------------------------------------------------------------------------
CORRUPT_AUDIO = "I couldn't play that recording; it may be damaged. Please record it again."
NO_AUDIO_STREAM = "That video has no sound. Send a voice message or an audio file."
NOT_AUDIO = "That's a picture, not a recording. Send a voice message or an audio file."
SILENT_AUDIO = "That recording is silent. Say something and send it again."


def audio_too_long(seconds: float, limit_seconds: float) -> str:
    return f"That recording is {_seconds(round(seconds))} long; the limit is {_seconds(limit_seconds)}. Send a shorter one."


def audio_too_short(seconds: float, min_seconds: float) -> str:
    return f"That recording is too short ({seconds:.1f} s). It needs at least {min_seconds:g} seconds of sound."


# --- text and speech -----------------------------------------------------------------------------
EMPTY_TEXT = "Give me something to say, e.g. /animate Hello there!"
SPEECH_FAILED = "Text-to-speech isn't working right now. Send a voice message instead, or try again later."


def text_too_long(length: int, limit: int) -> str:
    return f"That text is {length} characters; the limit is {limit}. Please shorten it."


def unknown_voice(name: str, examples: list[str]) -> str:
    return f"I don't know the voice '{name}'. Try one of: {', '.join(examples)}."


# --- rendering -----------------------------------------------------------------------------------
RENDER_FAILED = "Something went wrong while making your clip. Please try again."
OUT_OF_MEMORY = "The clip was too big for the renderer, even at lower quality. Try a shorter recording."
CANCELLED = "Cancelled."
ENCODE_FAILED = "I made the clip but couldn't package it as a video. Please try again."
LOWER_QUALITY_NOTE = "The renderer ran out of memory, so this clip was made at a lower quality."
CLIP_EXPIRED = "Your clip was made, but it expired before I could post it. Please ask again."
INPUTS_EXPIRED = "I no longer have the photo and recording for that clip. Please send them again."
QUEUE_UNAVAILABLE = "I can't take new clips right now. Please try again in a few minutes."


def render_timed_out(limit_s: float) -> str:
    return f"Your clip took longer than {_seconds(limit_s)} to make, so I stopped. Try a shorter recording or a lower quality."


# --- queue limits (jobs) -------------------------------------------------------------------------
def quota_concurrent(limit: int) -> str:
    clips = "clip" if limit == 1 else "clips"
    return f"You already have {limit} {clips} in the making. Try again when one of them is done."


def quota_user_hourly(limit: int, retry_after_s: float) -> str:
    return f"You've made {limit} clips in the last hour. Try again in {_seconds(_round_wait(retry_after_s))}."


def quota_server_hourly(limit: int, retry_after_s: float) -> str:
    return f"This chat has made {limit} clips in the last hour. Try again in {_seconds(_round_wait(retry_after_s))}."


def _round_wait(seconds: float) -> float:
    """Whole seconds under two minutes, whole minutes above (the wording uses minutes there)."""
    if seconds < 120:
        return float(max(1, round(seconds)))
    return float(60 * max(2, -(-int(seconds) // 60)))


def clip_too_big(limit_bytes: int) -> str:
    return f"The clip came out too big to send here (the limit is {_megabytes(limit_bytes)}). Try a shorter recording."


# --- a job's life on every surface (status, buttons, repeats) ------------------------------------
DONE = "done."
ALREADY_ASKED = "You asked for this exact clip a moment ago: it's already on its way (see above)."


def already_asked(link: str | None) -> str:
    """A repeat while the first request is on its way, pointing at its status message."""
    return f"You asked for this exact clip a moment ago: it's already on its way: {link}" if link else ALREADY_ASKED


CLIP_REFUSED = "Your clip is ready, but this chat refused it, most likely because it's too big to post here. Try a shorter recording."
CLIP_AGAIN = "You asked for this exact clip before, so here it is again."
UNEXPECTED = "Something went wrong on my side. Please try again in a moment."
DELIVERY_FAILED = "Your clip is ready but I couldn't post it here. Please try again later."
NOT_YOURS = "Only the person who asked for this clip, or a moderator of this chat, can do that."
NOT_THIS_MESSAGE = "That button doesn't belong to this message."
CANCELLING = "Cancelling your clip…"
ALREADY_FINISHED = "That clip has already finished."
JOB_GONE = "That clip is too old; send a new request."
AGAIN_STARTED = "On it: a new take is coming."
DELETED = "Deleted."
BUTTON_AGAIN = "Again"
BUTTON_DELETE = "Delete"
BUTTON_CANCEL = "Cancel"


# --- progress (shared by both bots) --------------------------------------------------------------
def ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queued(position: int | None) -> str:
    if not position or position <= 1:
        return "Queued — you're next."
    return f"Queued — {ordinal(position)} in line."


_STAGE_NAMES = {Stage.PREPARING: "Preparing", Stage.RENDERING: "Rendering", Stage.ENCODING: "Encoding"}


def progress(stage: str, step: int, total: int, eta_s: float | None = None, width: int = 10) -> str:
    """e.g. 'Rendering ▰▰▰▰▱▱▱▱▱▱ 40% · about 2 min left'."""
    fraction = 0.0 if total <= 0 else min(1.0, max(0.0, step / total))
    filled = round(fraction * width)
    line = f"{_STAGE_NAMES.get(stage, stage.capitalize())} {'▰' * filled}{'▱' * (width - filled)} {fraction:.0%}"
    if eta_s is not None and eta_s > 0:
        line += f" · about {_seconds(round(eta_s)) if eta_s < 90 else f'{round(eta_s / 60)} min'} left"
    return line


# --- Telegram ------------------------------------------------------------------------------------
TELEGRAM_START = (
    "Hi! Send me a photo of a face, then reply to it with a voice message and I'll make the face "
    "talk. Or send a photo with the caption /animate and a line of text. /help has the details."
)
TELEGRAM_ANIMATE_HELP = (
    "Send a photo with the caption /animate and what it should say, or reply to a photo with "
    "/animate and your text, e.g. /animate Hello there!"
)
TELEGRAM_CHECKING = "Got it! Checking your photo and sound…"
TELEGRAM_REPLY_TO_A_PHOTO = "Reply to a photo with your recording, and I'll make that face talk."
TELEGRAM_PHOTO_HINT = "Nice photo! Now reply to it with a voice message, or with /animate and a line of text."
TELEGRAM_NOTHING_TO_CANCEL = "You have no clip in the works here."
TELEGRAM_SETTINGS_ADMINS_ONLY = "Only chat admins can change the settings here."
TELEGRAM_SETTINGS_USAGE = (
    "Usage: /settings voice NAME, /settings quality fast|standard|high, /settings captions on|off "
    "(a photo's plain caption is a request), /settings clipcaption on|off (the spoken text under the clip)"
)
TELEGRAM_SETTINGS_SAVED = "Saved."
TELEGRAM_VOICES_HEADER = "Voices for /animate text (a chat admin sets the default with /settings voice NAME):"
# The command menu Telegram shows (setMyCommands).
TELEGRAM_COMMANDS = {
    "animate": "Animate a photo with a line of text",
    "help": "How to use me",
    "voices": "Voices for /animate",
    "status": "Your place in line",
    "cancel": "Stop your clip",
    "settings": "Chat settings (admins)",
}


def telegram_help(max_audio_seconds: float, max_text_chars: int, max_download_bytes: int) -> str:
    return (
        "How to use me:\n"
        "• Reply to a photo with a voice message, an audio file or a video: the face speaks or sings it.\n"
        "• Send a photo with the caption /animate and a line of text, or reply to a photo with /animate TEXT.\n"
        "• Photos sent as files work too.\n\n"
        f"Limits: recordings up to {_seconds(max_audio_seconds)}, text up to {max_text_chars} characters, "
        f"files up to {_megabytes(max_download_bytes)}.\n\n"
        "Commands: /voices lists voices, /status shows your place in line, /cancel stops your clip; "
        "admins: /settings.\n\n"
        "In groups: with privacy mode on I only see commands and replies to my own messages, so a "
        "voice reply to someone's photo passes me by. Use /animate, make me a group admin, or ask my "
        "owner to turn privacy off (@BotFather → /setprivacy → Disable, then re-add me)."
    )


def telegram_settings(voice: str, quality: str, caption_requests: bool, clip_captions: bool) -> str:
    return (
        f"Settings here: voice {voice}, quality {quality}, plain captions {'on' if caption_requests else 'off'}, "
        f"text under the clip {'on' if clip_captions else 'off'}.\n" + TELEGRAM_SETTINGS_USAGE
    )


# --- Discord -------------------------------------------------------------------------------------
NOT_A_RECORDING = "That isn't a recording. Attach a voice message or an audio file (MP3, OGG, WAV or M4A)."
DISCORD_VOICE_OR_TEXT = "Give me either a recording (voice) or a line of text (text), not both."
DISCORD_NEED_VOICE_OR_TEXT = "Add a recording (voice) or a line of text (text) for the face to say."
DISCORD_NO_PHOTO = "That message has no photo. Use Apps → Animate on a message with a picture."
DISCORD_MODAL_TITLE = "Animate this photo"
DISCORD_MODAL_TEXT_LABEL = "What should it say?"
DISCORD_MODAL_VOICE_LABEL = "Voice (optional, e.g. en-female)"
STARTED = "Got it! I'll show the progress in the channel and post the clip there."
DISCORD_SETTINGS_SAVED = "Saved."
DISCORD_CANT_POST_HERE = (
    "I can't post clips in this channel. Ask an admin to let me send messages and attach files here."
)
DISCORD_CONTEXT_MENU = "Animate"
# Command and option descriptions shown in Discord's command picker (at most 100 characters each).
DISCORD_DESCRIBE = {
    "animate": "Make the face in a photo say a recording or a line of text",
    "photo": "A photo with a face (JPEG, PNG or WebP)",
    "voice": "A voice message or audio file for the face to say or sing",
    "text": "A line of text to speak instead of a recording",
    "voice_name": "Text-to-speech voice, e.g. en-female",
    "quality": "fast (384 px), standard (512 px) or high (704 px)",
    "motion": "How much the head moves",
    "help": "How to use the avatar bot",
    "settings": "Avatar bot settings for this server (admins)",
    "settings_show": "Show this server's avatar bot settings",
    "settings_channels": "Allow the bot in a channel, or remove it; no channels: everywhere",
    "settings_channel": "The channel to allow or remove",
    "settings_allow": "True to allow the bot there, False to remove the channel",
    "settings_defaults": "Default voice and quality on this server",
    "settings_user_limit": "Clips one member may ask for per hour on this server",
    "settings_per_hour": "Clips per member per hour (0: the bot's own limit)",
}
DISCORD_MOTION_CHOICES = {"still": 0.0, "calm": 0.5, "normal": 1.0, "lively": 1.6}


def discord_status(who: str, line: str) -> str:
    """A job's status line, its outcome, or its failure, addressed to the requester."""
    return f"Clip for {who}: {line}"


def discord_clip_caption(who: str, notes: list[str]) -> str:
    return " ".join([f"Here you go, {who}!", *notes])


def discord_channel_not_allowed(channels: list[str]) -> str:
    return f"I only make clips in {', '.join(channels)} on this server."


def discord_settings(channels: list[str], voice: str, quality: str, per_hour: int | None) -> str:
    where = ", ".join(channels) if channels else "every channel"
    limit = f"{per_hour} clips per member per hour" if per_hour else "the bot's own per-member limit"
    return f"Settings on this server: channels: {where}; voice: {voice}; quality: {quality}; {limit}."


def discord_help(message_content_intent: bool, max_audio_seconds: float, max_text_chars: int) -> str:
    reply = (
        "• Reply to a message that has a photo with a voice message or an audio file."
        if message_content_intent
        else "• Reply to a message that has a photo with a voice message or an audio file, and mention me "
        "in the reply (I can't read other messages here)."
    )
    return (
        "How to use me:\n"
        "• /animate with a photo, plus a recording (voice) or a line of text (text).\n"
        "• Right-click a message with a photo → Apps → Animate, then type what it should say.\n"
        f"{reply}\n\n"
        f"Limits: recordings up to {_seconds(max_audio_seconds)}, text up to {max_text_chars} characters. "
        "The clip arrives in the same channel with Again and Delete buttons; Cancel stops a clip in the works. "
        "Server admins: /avatar-settings."
    )


# --- web page ------------------------------------------------------------------------------------
# Everything the page shows, by key: the page fills its labels from this table (see avatarbot.web).
WEB_TEXTS = {
    "title": "Bring a photo to life",
    "intro": "Choose a photo of a face, then record, upload or type what it should say.",
    "photo": "Photo",
    "use_example": "Use the example photo",
    "sound": "What should it say?",
    "tab_text": "Type",
    "tab_record": "Record",
    "tab_upload": "Upload a song or recording",
    "text_placeholder": "Hello! I am a photo, and now I can talk.",
    "voice": "Voice",
    "record_start": "Start recording",
    "record_stop": "Stop",
    "recording": "Recording…",
    "recorded": "Recorded. Listen, or record again.",
    "no_microphone": "The browser didn't let me use a microphone. Upload a recording or type a line instead.",
    "quality": "Quality",
    "motion": "Head motion",
    "motion_still": "still",
    "motion_lively": "lively",
    "submit": "Animate",
    "sending": "Sending…",
    "download": "Download",
    "done": "Here you go!",
    "finishing": "Finishing your clip…",
    "need_photo": "Choose a photo first.",
    "need_sound": "Record something, choose a recording, or type a line for the face to say.",
    "password": "Password",
    "sign_in": "Sign in",
    "wrong_password": "That password isn't right.",
    "sign_in_first": "Sign in with the page's password first.",
    "offline": "I can't reach the server. Is `avatarbot web` still running?",
}
WEB_QUALITY_LABELS = {"fast": "Fast (384 px)", "standard": "Standard (512 px)", "high": "High (704 px)"}
