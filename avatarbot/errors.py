"""Every failure a user can cause or see, each with its own type.

An error carries two texts: `user_message`, a short friendly sentence for the chat (always
built by `avatarbot.messages`), and `detail`, what the operator's log needs. Adapters show the
first and log the second; nothing else ever reaches a user. `code` (per class) and `params` (the
numbers in the sentence) say the same in a form a reply in another language can be built from:
a `messages.Text` passed as `user_message` brings its parameters, and its key as `params["key"]`
(one code may have several sentences); `messages.for_error(error, lang)` says it in `lang`.
"""

from __future__ import annotations

from avatarbot.messages import Text


class AvatarbotError(Exception):
    """Base of every error that ends a request with a message instead of a crash."""

    code = "error"

    def __init__(self, user_message: str, *, detail: str | None = None, params: dict | None = None):
        super().__init__(detail or user_message)
        self.user_message = user_message
        self.detail = detail or user_message
        spoken = {**user_message.params, "key": user_message.key} if isinstance(user_message, Text) else {}
        self.params = {**spoken, **(params or {})}


class InputError(AvatarbotError):
    """The request can't work as sent. Refused before any render time is spent."""

    code = "bad_input"


# --- files of any kind -------------------------------------------------------------------------
class EmptyFileError(InputError):
    code = "empty_file"


class FileTooBigError(InputError):
    code = "file_too_big"


class DownloadError(InputError):
    """The file host failed, stalled or passed the download deadline: nothing to check, try again."""

    code = "download_failed"


class ClipUndeliverableError(AvatarbotError):
    """A finished clip can't be posted for good (too big for the chat even re-encoded, expired)."""

    code = "clip_undeliverable"


# --- images ------------------------------------------------------------------------------------
class ImageError(InputError):
    code = "bad_image"


class NotAnImageError(ImageError):
    code = "not_an_image"


class UnsupportedImageFormatError(ImageError):
    code = "unsupported_image_format"


class TruncatedImageError(ImageError):
    code = "truncated_image"


class ImageTooLargeError(ImageError):
    code = "image_too_large"


class ImageTooSmallError(ImageError):
    code = "image_too_small"


class AnimatedImageError(ImageError):
    code = "animated_image"


# --- audio -------------------------------------------------------------------------------------
class AudioError(InputError):
    code = "bad_audio"


class CorruptAudioError(AudioError):
    code = "corrupt_audio"


class NoAudioStreamError(AudioError):
    code = "no_audio_stream"


class NotAudioError(AudioError):
    """A picture (JPEG, PNG, GIF...) sent where a recording was expected."""

    code = "not_audio"


class AudioTooLongError(AudioError):
    code = "audio_too_long"


class AudioTooShortError(AudioError):
    code = "audio_too_short"


class SilentAudioError(AudioError):
    code = "silent_audio"


# --- text and speech ---------------------------------------------------------------------------
class TextError(InputError):
    code = "bad_text"


class EmptyTextError(TextError):
    code = "empty_text"


class TextTooLongError(TextError):
    code = "text_too_long"


class UnknownVoiceError(TextError):
    code = "unknown_voice"


class SpeechError(AvatarbotError):
    """No TTS engine could speak the text (service down and no offline engine)."""

    code = "tts_failed"


# --- rendering and jobs ------------------------------------------------------------------------
class RenderError(AvatarbotError):
    code = "render_failed"


class OutOfMemoryError(RenderError):
    code = "out_of_memory"


class RenderCancelled(AvatarbotError):
    code = "cancelled"


class EncodeError(AvatarbotError):
    code = "encode_failed"


class RenderTimeoutError(RenderError):
    """The render ran past jobs.render_time_limit_s."""

    code = "render_timeout"


class InputsExpiredError(InputError):
    """ "Again" on a job whose stored inputs have expired (jobs.blob_ttl_s)."""

    code = "inputs_expired"


class QueueUnavailableError(AvatarbotError):
    """No Redis to queue on: no redis.url and no `avatarbot run` on this machine, or it is down."""

    code = "queue_unavailable"


class ChannelNotAllowedError(InputError):
    """A server admin limited the bot to some channels (Discord /avatar-settings), not this one."""

    code = "channel_not_allowed"


class QuotaError(AvatarbotError):
    code = "quota"

    def __init__(self, user_message: str, *, retry_after_s: float, detail: str | None = None):
        super().__init__(user_message, detail=detail)
        self.retry_after_s = retry_after_s
