"""Every sentence a user can read, in one place, so wording and translation have one home.

Plain text only (no Markdown): each adapter escapes or formats it for its platform. Keep them
short, friendly, and say what to do next. Operators' log lines do not belong here.
"""

from __future__ import annotations


def _seconds(value: float) -> str:
    if value >= 120:
        return f"{value / 60:g} minutes"
    return f"{value:g} seconds"


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / (1024 * 1024):.0f} MB"


# --- files ---------------------------------------------------------------------------------------
EMPTY_FILE = "That file is empty. Please send it again."


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


_STAGE_NAMES = {"preparing": "Preparing", "rendering": "Rendering", "encoding": "Encoding", "uploading": "Uploading"}


def progress(stage: str, step: int, total: int, eta_s: float | None = None, width: int = 10) -> str:
    """e.g. 'Rendering ▰▰▰▰▱▱▱▱▱▱ 40% · about 2 min left'."""
    fraction = 0.0 if total <= 0 else min(1.0, max(0.0, step / total))
    filled = round(fraction * width)
    line = f"{_STAGE_NAMES.get(stage, stage.capitalize())} {'▰' * filled}{'▱' * (width - filled)} {fraction:.0%}"
    if eta_s is not None and eta_s > 0:
        line += f" · about {_seconds(round(eta_s)) if eta_s < 90 else f'{round(eta_s / 60)} min'} left"
    return line
