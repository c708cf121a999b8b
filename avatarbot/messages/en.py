"""English: the source of truth. Every key shipped in another language exists here first, with
the same placeholders. Templates are `str.format` strings with named fields; a field may carry a
spec that the catalogue's formatter turns into words for the language (see `avatarbot.messages`):
`duration` (seconds), `size` (bytes), `megapixels` (pixels), `ordinal`, `list`, `onoff`,
`plural:ONE|OTHER`, or any standard spec such as `.1f`.
"""

CATALOGUE = {
    # --- files ---
    "empty_file": "That file is empty. Please send it again.",
    "download_failed": "I couldn't fetch that file. Please send it again.",
    "file_too_big": "That file is too big. The limit is {limit_bytes:size}.",
    # --- images ---
    "not_an_image": "That doesn't look like a picture. Send a photo (JPEG, PNG or WebP).",
    "truncated_image": "That photo looks cut off or damaged. Please send it again.",
    "animated_image": "That's an animation. Send a still photo instead.",
    "unsupported_image": "I can't read that image format. Send a JPEG, PNG or WebP photo.",
    "image_too_large": (
        "That photo is too large ({pixels:megapixels} megapixels; the limit is {limit_pixels:megapixels}). "
        "Send a smaller one."
    ),
    "image_too_small": (
        "That photo is too small ({width}x{height}). It needs to be at least {min_side} pixels on each side."
    ),
    "no_face_note": "I couldn't find a face in that photo, so the whole picture moves instead.",
    # --- audio ---
    "corrupt_audio": "I couldn't play that recording; it may be damaged. Please record it again.",
    "no_audio_stream": "That video has no sound. Send a voice message or an audio file.",
    "not_audio": "That's a picture, not a recording. Send a voice message or an audio file.",
    "silent_audio": "That recording is silent. Say something and send it again.",
    "audio_too_long": (
        "That recording is {seconds:duration} long; the limit is {limit_seconds:duration}. Send a shorter one."
    ),
    "audio_too_short": (
        "That recording is too short ({seconds:.1f} s). It needs at least {min_seconds:g} seconds of sound."
    ),
    # --- text and speech ---
    "empty_text": "Give me something to say, e.g. /animate Hello there!",
    "speech_failed": "Text-to-speech isn't working right now. Send a voice message instead, or try again later.",
    "text_too_long": "That text is {length} characters; the limit is {limit}. Please shorten it.",
    "unknown_voice": "I don't know the voice '{name}'. Try one of: {examples:list}.",
    # --- rendering ---
    "render_failed": "Something went wrong while making your clip. Please try again.",
    "out_of_memory": "The clip was too big for the renderer, even at lower quality. Try a shorter recording.",
    "cancelled": "Cancelled.",
    "encode_failed": "I made the clip but couldn't package it as a video. Please try again.",
    "lower_quality_note": "The renderer ran out of memory, so this clip was made at a lower quality.",
    "clip_expired": "Your clip was made, but it expired before I could post it. Please ask again.",
    "inputs_expired": "I no longer have the photo and recording for that clip. Please send them again.",
    "queue_unavailable": "I can't take new clips right now. Please try again in a few minutes.",
    "render_timeout": (
        "Your clip took longer than {limit_s:duration} to make, so I stopped. "
        "Try a shorter recording or a lower quality."
    ),
    # --- queue limits ---
    "quota_concurrent": (
        "You already have {limit} {limit:plural:clip|clips} in the making. Try again when one of them is done."
    ),
    "quota_user_hourly": "You've made {limit} clips in the last hour. Try again in {retry_after_s:duration}.",
    "quota_server_hourly": "This chat has made {limit} clips in the last hour. Try again in {retry_after_s:duration}.",
    "clip_too_big": (
        "The clip came out too big to send here (the limit is {limit_bytes:size}). Try a shorter recording."
    ),
    # --- a job's life on every surface ---
    "done": "done.",
    "already_asked": "You asked for this exact clip a moment ago: it's already on its way (see above).",
    "already_asked_link": "You asked for this exact clip a moment ago: it's already on its way: {link}",
    "clip_refused": (
        "Your clip is ready, but this chat refused it, most likely because it's too big to post here. "
        "Try a shorter recording."
    ),
    "clip_again": "You asked for this exact clip before, so here it is again.",
    "unexpected": "Something went wrong on my side. Please try again in a moment.",
    "delivery_failed": "Your clip is ready but I couldn't post it here. Please try again later.",
    "not_yours": "Only the person who asked for this clip, or a moderator of this chat, can do that.",
    "not_this_message": "That button doesn't belong to this message.",
    "cancelling": "Cancelling your clip…",
    "already_finished": "That clip has already finished.",
    "job_gone": "That clip is too old; send a new request.",
    "again_started": "On it: a new take is coming.",
    "deleted": "Deleted.",
    "button_again": "Again",
    "button_delete": "Delete",
    "button_cancel": "Cancel",
    "started": "Got it! I'll show the progress in the channel and post the clip there.",
    "settings_saved": "Saved.",
    "unknown_language": "I don't speak '{name}' yet. Languages: {languages:list}.",
    # --- progress ---
    "queued_next": "Queued — you're next.",
    "queued": "Queued — {position:ordinal} in line.",
    "stage_preparing": "Preparing",
    "stage_rendering": "Rendering",
    "stage_encoding": "Encoding",
    "progress_eta": "about {eta_s:duration} left",
    # --- Telegram ---
    "telegram_start": (
        "Hi! Send me a photo of a face, then reply to it with a voice message and I'll make the face "
        "talk. Or send a photo with the caption /animate and a line of text. /help has the details."
    ),
    "telegram_animate_help": (
        "Send a photo with the caption /animate and what it should say, or reply to a photo with "
        "/animate and your text, e.g. /animate Hello there!"
    ),
    "telegram_checking": "Got it! Checking your photo and sound…",
    "telegram_reply_to_a_photo": "Reply to a photo with your recording, and I'll make that face talk.",
    "telegram_photo_hint": "Nice photo! Now reply to it with a voice message, or with /animate and a line of text.",
    "telegram_nothing_to_cancel": "You have no clip in the works here.",
    "telegram_settings_admins_only": "Only chat admins can change the settings here.",
    "telegram_settings_usage": (
        "Usage: /settings voice NAME, /settings quality fast|standard|high, /settings captions on|off "
        "(a photo's plain caption is a request), /settings clipcaption on|off (the spoken text under the clip), "
        "/settings language {languages} (auto: each person's own)"
    ),
    "telegram_voices_header": "Voices for /animate text (a chat admin sets the default with /settings voice NAME):",
    "telegram_help": (
        "How to use me:\n"
        "• Reply to a photo with a voice message, an audio file or a video: the face speaks or sings it.\n"
        "• Send a photo with the caption /animate and a line of text, or reply to a photo with /animate TEXT.\n"
        "• Photos sent as files work too.\n\n"
        "Limits: recordings up to {max_audio_seconds:duration}, text up to {max_text_chars} characters, "
        "files up to {max_download_bytes:size}.\n\n"
        "Commands: /voices lists voices, /status shows your place in line, /cancel stops your clip; "
        "admins: /settings.\n\n"
        "In groups: with privacy mode on I only see commands and replies to my own messages, so a "
        "voice reply to someone's photo passes me by. Use /animate, make me a group admin, or ask my "
        "owner to turn privacy off (@BotFather → /setprivacy → Disable, then re-add me)."
    ),
    "telegram_settings": (
        "Settings here: voice {voice}, quality {quality}, plain captions {caption_requests:onoff}, "
        "text under the clip {clip_captions:onoff}, language {language}."
    ),
    "language_auto": "auto",
    "word_on": "on",
    "word_off": "off",
    # The command menu Telegram shows (setMyCommands).
    "command_animate": "Animate a photo with a line of text",
    "command_help": "How to use me",
    "command_voices": "Voices for /animate",
    "command_status": "Your place in line",
    "command_cancel": "Stop your clip",
    "command_settings": "Chat settings (admins)",
    # --- Discord ---
    "not_a_recording": "That isn't a recording. Attach a voice message or an audio file (MP3, OGG, WAV or M4A).",
    "discord_voice_or_text": "Give me either a recording (voice) or a line of text (text), not both.",
    "discord_need_voice_or_text": "Add a recording (voice) or a line of text (text) for the face to say.",
    "discord_no_photo": "That message has no photo. Use Apps → Animate on a message with a picture.",
    "discord_modal_title": "Animate this photo",
    "discord_modal_text_label": "What should it say?",
    "discord_modal_voice_label": "Voice (optional, e.g. en-female)",
    "discord_cant_post_here": (
        "I can't post clips in this channel. Ask an admin to let me send messages and attach files here."
    ),
    "discord_context_menu": "Animate",
    "discord_status": "Clip for {who}: {line}",
    "discord_clip_caption": "Here you go, {who}!",
    "channel_not_allowed": "I only make clips in {channels:list} on this server.",
    "discord_settings": "Settings on this server: channels: {channels}; voice: {voice}; quality: {quality}; {limit}; language: {language}.",
    "discord_every_channel": "every channel",
    "discord_per_hour": "{per_hour} clips per member per hour",
    "discord_default_per_hour": "the bot's own per-member limit",
    "discord_help": (
        "How to use me:\n"
        "• /{animate_command} with a photo, plus a recording (voice) or a line of text (text).\n"
        "• Right-click a message with a photo → Apps → Animate, then type what it should say.\n"
        "• Reply to a message that has a photo with a voice message or an audio file.\n\n"
        "Limits: recordings up to {max_audio_seconds:duration}, text up to {max_text_chars} characters. "
        "The clip arrives in the same channel with Again and Delete buttons; Cancel stops a clip in the works. "
        "Server admins: /{settings_command}."
    ),
    "discord_help_mention": (
        "How to use me:\n"
        "• /{animate_command} with a photo, plus a recording (voice) or a line of text (text).\n"
        "• Right-click a message with a photo → Apps → Animate, then type what it should say.\n"
        "• Reply to a message that has a photo with a voice message or an audio file, and mention me "
        "in the reply (I can't read other messages here).\n\n"
        "Limits: recordings up to {max_audio_seconds:duration}, text up to {max_text_chars} characters. "
        "The clip arrives in the same channel with Again and Delete buttons; Cancel stops a clip in the works. "
        "Server admins: /{settings_command}."
    ),
    # Command and option descriptions in Discord's command picker (at most 100 characters each).
    "describe_animate": "Make the face in a photo say a recording or a line of text",
    "describe_photo": "A photo with a face (JPEG, PNG or WebP)",
    "describe_voice": "A voice message or audio file for the face to say or sing",
    "describe_text": "A line of text to speak instead of a recording",
    "describe_voice_name": "Text-to-speech voice, e.g. en-female",
    "describe_quality": "fast (384 px), standard (512 px) or high (704 px)",
    "describe_motion": "How much the head moves",
    "describe_help": "How to use the avatar bot",
    "describe_settings": "Avatar bot settings for this server (admins)",
    "describe_settings_show": "Show this server's avatar bot settings",
    "describe_settings_channels": "Allow the bot in a channel, or remove it; no channels: everywhere",
    "describe_settings_channel": "The channel to allow or remove",
    "describe_settings_allow": "True to allow the bot there, False to remove the channel",
    "describe_settings_defaults": "Default voice and quality on this server",
    "describe_settings_user_limit": "Clips one member may ask for per hour on this server",
    "describe_settings_per_hour": "Clips per member per hour (0: the bot's own limit)",
    "describe_settings_language": "The language the bot answers in on this server (auto: each member's own)",
    "describe_language": "A language code such as en, zh-Hans or es; auto for each member's own",
}

# Slash-command names as Discord shows them per language (lowercase, no spaces; English is the
# registered name itself).
CATALOGUE.update(
    {
        "name_animate": "animate",
        "name_help": "help",
        "name_settings": "avatar-settings",
    }
)

# The local web page (avatarbot.web): its labels, by the page's own names after `web_`.
CATALOGUE.update(
    {
        "web_title": "Bring a photo to life",
        "web_intro": "Choose a photo of a face, then record, upload or type what it should say.",
        "web_photo": "Photo",
        "web_use_example": "Use the example photo",
        "web_sound": "What should it say?",
        "web_tab_text": "Type",
        "web_tab_record": "Record",
        "web_tab_upload": "Upload a song or recording",
        "web_text_placeholder": "Hello! I am a photo, and now I can talk.",
        "web_voice": "Voice",
        "web_record_start": "Start recording",
        "web_record_stop": "Stop",
        "web_recording": "Recording…",
        "web_recorded": "Recorded. Listen, or record again.",
        "web_no_microphone": "The browser didn't let me use a microphone. Upload a recording or type a line instead.",
        "web_quality": "Quality",
        "web_motion": "Head motion",
        "web_motion_still": "still",
        "web_motion_lively": "lively",
        "web_submit": "Animate",
        "web_sending": "Sending…",
        "web_download": "Download",
        "web_done": "Here you go!",
        "web_finishing": "Finishing your clip…",
        "web_need_photo": "Choose a photo first.",
        "web_need_sound": "Record something, choose a recording, or type a line for the face to say.",
        "web_password": "Password",
        "web_sign_in": "Sign in",
        "web_wrong_password": "That password isn't right.",
        "web_sign_in_first": "Sign in with the page's password first.",
        "web_offline": "I can't reach the server. Is `avatarbot web` still running?",
        "web_quality_fast": "Fast (384 px)",
        "web_quality_standard": "Standard (512 px)",
        "web_quality_high": "High (704 px)",
    }
)
