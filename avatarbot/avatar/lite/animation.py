"""One clip's worth of lite animation: everything computed up front, then frames on demand.

`LiteAnimation.prepare` does all the per-clip work (audio analysis, motion curves, warp fields);
`frames` then yields each frame as a handful of array operations, so the encoder can pull them
one at a time and a long clip never sits in memory whole.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from avatarbot import errors, messages
from avatarbot.avatar.engine import FPS, CancelCheck, Progress, ProgressCallback, RenderOptions
from avatarbot.avatar.lite.face_warp import FaceWarp
from avatarbot.avatar.lite.fallback import warp_whole_image, whole_image_transforms
from avatarbot.avatar.lite.head_warp import HeadWarp
from avatarbot.avatar.lite.motion import HeadMotion, blink_curve, head_motion
from avatarbot.avatar.lite.speech import MouthControls, mouth_controls
from avatarbot.media.types import Audio, Photo

log = logging.getLogger(__name__)

PROGRESS_EVERY = 10  # frames between progress reports (0.4 s of video)


class StageTimer:
    """Adds up wall time per named stage, for bench/lite.py. Costs ~1 us per use."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


class _NoTimer:
    def stage(self, name: str):
        return contextlib.nullcontext()


class LiteAnimation:
    def __init__(
        self,
        photo: np.ndarray,
        controls: MouthControls,
        notes: list[str],
        *,
        face: FaceWarp | None = None,
        head: HeadWarp | None = None,
        blink: np.ndarray | None = None,
        motion: HeadMotion | None = None,
        transforms: np.ndarray | None = None,
    ):
        self.photo = photo
        self.frame_count = len(controls)
        self.controls = controls
        self.notes = notes
        self.face, self.head, self.blink, self.motion = face, head, blink, motion
        self.transforms = transforms  # whole-image affines, when there is no face

    @classmethod
    def prepare(
        cls, photo: Photo, audio: Audio, options: RenderOptions, frame_count: int, timer: StageTimer | None = None
    ) -> LiteAnimation:
        timer = timer or _NoTimer()
        motion = float(np.clip(options.motion, 0.0, 2.0))
        rgb = np.ascontiguousarray(photo.rgb, dtype=np.uint8)
        with timer.stage("audio analysis"):
            controls = mouth_controls(audio, frame_count, FPS)

        face = head = None
        with timer.stage("rig setup"):
            if photo.main_face is not None:
                try:
                    face = FaceWarp(photo.main_face, rgb.shape, rgb)
                    head = HeadWarp(face, rgb.shape, face.axes.to_face(*photo.main_face.landmarks["nose"]))
                except ValueError:
                    log.warning(
                        "main face %s is unusable for the lite rig; animating the whole image", photo.main_face.box
                    )
                    face = head = None
            if face is not None:
                blink = blink_curve(frame_count, options.seed, controls.phrase_end)
                moves = head_motion(frame_count, options.seed, motion, controls.activity, controls.accent)
                animation = cls(rgb, controls, [], face=face, head=head, blink=blink, motion=moves)
            else:
                transforms = whole_image_transforms(rgb.shape[1], rgb.shape[0], controls.gap, motion, options.seed)
                animation = cls(rgb, controls, [messages.NO_FACE_NOTE], transforms=transforms)
        return animation

    def frame(self, i: int, timer: StageTimer | None = None) -> np.ndarray:
        timer = timer or _NoTimer()
        if self.face is None:
            with timer.stage("whole-image warp"):
                return warp_whole_image(self.photo, self.transforms[i])
        with timer.stage("frame copy"):
            frame = self.photo.copy()
        c, m = self.controls, self.motion
        with timer.stage("face warp + mouth"):
            frame[self.face.region.slices] = self.face.apply(
                self.photo[self.face.region.slices],
                float(c.gap[i]),
                float(c.width[i]),
                float(self.blink[i]),
                float(m.brow[i]),
            )
        with timer.stage("head warp"):
            head = self.head.apply(
                frame[self.head.region.slices],
                float(m.roll[i]),
                float(m.shift_x[i]),
                float(m.shift_y[i]),
                float(m.yaw[i]),
                float(m.pitch[i]),
            )
            if head is not None:
                frame[self.head.region.slices] = head
        return frame

    def frames(
        self,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        timer: StageTimer | None = None,
    ) -> Iterator[np.ndarray]:
        """Each frame in order; checks for cancellation before each and reports progress every
        few. Runs when iterated, i.e. as fast as the encoder consumes."""
        total = self.frame_count
        if progress is not None:  # marks the start, so a watcher's ETA counts from here
            progress(Progress("rendering", 0, total))
        for i in range(total):
            if should_cancel is not None and should_cancel():
                raise errors.RenderCancelled(messages.CANCELLED, detail=f"lite render cancelled at frame {i}/{total}")
            frame = self.frame(i, timer)
            done = i + 1
            # Reported before handing the frame over: a consumer that stops after the last frame
            # never resumes this generator, and must still see 100%.
            if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
                progress(Progress("rendering", done, total))
            yield frame
