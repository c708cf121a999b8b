"""What the render task records, in a few calls so the task itself stays about rendering.

observe_queue_wait(job)                       when a worker first takes a job
watch = RenderWatch(engine, quality)          per render attempt: pass the engine's progress
watch.on_progress(progress)                   reports through it, call `ended()` after it
observe_render(engine, quality, seconds)      a clip is done
observe_out_of_memory_retry(engine, quality)
observe_outcome(engine, outcome)              'done', 'failed:<code>', 'cancelled', 'lost'
"""

from __future__ import annotations

import sys
import time

from avatarbot.observability import metrics
from avatarbot.vocab import Stage

# Engines that denoise on the GPU: their "rendering" progress counts steps (lite's counts frames).
DIFFUSION_ENGINES = frozenset({"hunyuan"})
# How a render attempt can end, besides with "failed:<code>"; other outcomes rendered nothing.
RENDER_OUTCOMES = frozenset({"done", "failed", "cancelled", "lost"})


def observe_queue_wait(job) -> None:
    """From submission to the first claim, in the job record's own timestamps. A later claim
    (the job taken over after a worker died) is not queue wait, so only attempt 1 counts."""
    if job.attempts != 1 or job.started_at is None or not job.created_at:
        return
    metrics.QUEUE_WAIT.observe(max(0.0, job.started_at - job.created_at))


def observe_render(engine: str, quality: str, seconds: float) -> None:
    metrics.RENDER_SECONDS.labels(engine, quality).observe(seconds)


def observe_out_of_memory_retry(engine: str, quality: str) -> None:
    metrics.OUT_OF_MEMORY_RETRIES.labels(engine, quality).inc()


def observe_outcome(engine: str, outcome: str) -> None:
    kind, _, code = outcome.partition(":")
    if kind in RENDER_OUTCOMES:
        metrics.RENDERS.labels(engine, kind, code).inc()


class RenderWatch:
    """One render attempt: times the diffusion steps from the engine's progress reports, and
    reads the peak GPU memory when it ends.

    A step's time is the gap between two "rendering" reports divided by the steps between them
    (the pipeline reports after each step, over all its sliding windows). The gap before the
    first report also holds the text, image and audio encoding, so it is not counted."""

    def __init__(self, engine: str, quality: str):
        self.engine = engine
        self.quality = quality
        self._last: tuple[int, float] | None = None  # (step, when) of the last rendering report
        self._torch = _torch_with_cuda() if engine in DIFFUSION_ENGINES else None
        if self._torch is not None:
            self._torch.cuda.reset_peak_memory_stats()

    def on_progress(self, progress) -> None:
        if self.engine not in DIFFUSION_ENGINES or progress.stage != Stage.RENDERING:
            return
        now = time.monotonic()
        last = self._last
        if last is not None:
            steps = progress.step - last[0]
            if steps <= 0:
                return
            histogram = metrics.DIFFUSION_STEP_SECONDS.labels(self.quality)
            for _ in range(steps):
                histogram.observe((now - last[1]) / steps)
        self._last = (progress.step, now)

    def ended(self) -> None:
        if self._torch is not None:
            peak = self._torch.cuda.max_memory_allocated()
            metrics.PEAK_GPU_MEMORY.labels(self.engine, self.quality).observe(peak)


def _torch_with_cuda():
    """torch, when an engine has imported it and a GPU is there. Never imports it: a lite
    worker stays without torch."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch
    return None
