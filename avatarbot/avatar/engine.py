"""The engine interface: (photo, audio, options) -> frames at 25 fps.

An engine knows nothing of chats, queues or files. The caller (the CLI or the render task)
decodes inputs with `avatarbot.media`, calls `render`, and encodes the frames it gets back.
Engines report progress through a callback and poll `should_cancel` between steps, raising
`RenderCancelled` when it answers True, so a cancelled job stops within one step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from avatarbot.media.types import Audio, Photo
from avatarbot.vocab import QUALITY_TABLE, Quality

FPS = 25  # HunyuanVideo-Avatar renders 25 fps; every engine uses the same rate

# The short side of the rendered video for each quality preset (HunyuanVideo-Avatar's buckets).
QUALITY_SHORT_SIDE: dict[str, int] = {quality: preset.short_side for quality, preset in QUALITY_TABLE.items()}


@dataclass(frozen=True)
class RenderOptions:
    quality: Quality = Quality.STANDARD
    motion: float = 1.0  # head-motion intensity, 0 (still) .. 2 (lively)
    seed: int = 0
    prompt: str = ""  # optional scene description for engines that take one


@dataclass(frozen=True)
class Progress:
    stage: str  # "preparing", "rendering", "encoding", ...
    step: int
    total: int


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


@dataclass
class Clip:
    """What an engine returns. `frames` may be lazy: the encoder pulls them one at a time, so a
    60 s clip never has to sit in memory whole. Iterate it once."""

    frames: Iterable[np.ndarray]  # each (height, width, 3) uint8 RGB
    frame_count: int
    width: int
    height: int
    fps: int = FPS
    notes: list[str] = field(default_factory=list)  # user-facing notes (from avatarbot.messages)


class Engine(Protocol):
    name: str

    def render(
        self,
        photo: Photo,
        audio: Audio,
        options: RenderOptions,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> Clip: ...


def frame_count_for(duration_s: float, fps: int = FPS) -> int:
    """Frames needed to cover the audio: the clip ends with the sound, never before it."""
    return max(1, int(np.ceil(duration_s * fps - 1e-6)))
