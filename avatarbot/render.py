"""Checked photo + audio -> an MP4 on disk: the one render path shared by the CLI and the worker.

Keeping it in one place means `avatarbot animate` on a laptop and a GPU worker behind a bot make
exactly the same clip from the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatarbot.avatar.engine import QUALITY_SHORT_SIDE, CancelCheck, Engine, Progress, ProgressCallback, RenderOptions
from avatarbot.media.images import fit_to_bucket
from avatarbot.media.types import Audio, Photo
from avatarbot.media.video import encode_mp4
from avatarbot.vocab import QUALITY_TABLE, Stage

# Faster x264 presets for cheaper quality levels: the preview should come back quickly.
X264_PRESET = {quality: preset.x264_preset for quality, preset in QUALITY_TABLE.items()}


@dataclass
class RenderedClip:
    path: Path
    width: int
    height: int
    frame_count: int
    notes: list[str]


def render_to_mp4(
    engine: Engine,
    photo: Photo,
    audio: Audio,
    options: RenderOptions,
    out: Path,
    *,
    crf: int,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> RenderedClip:
    """Fit the photo to the quality's size bucket, render, and encode once.

    The engine may produce frames lazily; encoding pulls them, so for streaming engines the
    "rendering" progress runs while the encoder works and "encoding" marks only the final mux.
    """
    fitted = fit_to_bucket(photo, QUALITY_SHORT_SIDE[options.quality])
    clip = engine.render(fitted, audio, options, progress=progress, should_cancel=should_cancel)
    encode_mp4(clip, audio, out, crf=crf, preset=X264_PRESET[options.quality])
    if progress is not None:
        progress(Progress(Stage.ENCODING, 1, 1))
    return RenderedClip(out, clip.width, clip.height, clip.frame_count, list(clip.notes))
