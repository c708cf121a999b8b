"""The lite engine: a CPU preview that animates a photo with warps, in seconds, with no weights.

It is what runs when there is no GPU (tests, development, small servers) and a quick preview
when there is one. See `animation.py` for how a clip is put together.
"""

from __future__ import annotations

from avatarbot import errors, messages
from avatarbot.avatar.engine import (
    QUALITY_SHORT_SIDE,
    CancelCheck,
    Clip,
    ProgressCallback,
    RenderOptions,
    frame_count_for,
)
from avatarbot.avatar.lite.animation import LiteAnimation
from avatarbot.media.images import BUCKET_MULTIPLE, fit_to_bucket
from avatarbot.media.types import Audio, Photo


class LiteEngine:
    name = "lite"

    def render(
        self,
        photo: Photo,
        audio: Audio,
        options: RenderOptions,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> Clip:
        """A clip whose frames are rendered as they are iterated (cheap to call, work happens in
        the encoder's loop)."""
        if should_cancel is not None and should_cancel():
            raise errors.RenderCancelled(messages.CANCELLED, detail="lite render cancelled before it started")
        photo = _sized_for_video(photo, options)
        frame_count = frame_count_for(audio.duration)
        animation = LiteAnimation.prepare(photo, audio, options, frame_count)
        return Clip(
            frames=animation.frames(progress, should_cancel),
            frame_count=frame_count,
            width=photo.width,
            height=photo.height,
            notes=list(animation.notes),
        )


def _sized_for_video(photo: Photo, options: RenderOptions) -> Photo:
    """Callers normally hand over a photo already fitted to a size bucket; one that isn't (odd
    sides break H.264) is fitted here, to the quality preset's bucket."""
    if photo.width % BUCKET_MULTIPLE == 0 and photo.height % BUCKET_MULTIPLE == 0:
        return photo
    return fit_to_bucket(photo, QUALITY_SHORT_SIDE[options.quality])
