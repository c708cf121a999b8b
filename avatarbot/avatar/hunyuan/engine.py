"""`engine=hunyuan`: the Engine interface over HunyuanVideoAvatarPipeline.

The pipeline is built once per process (loading 80 GB of weights takes minutes) and reused for
every job. Tests build the engine from a tiny in-memory pipeline: `HunyuanEngine(pipeline=...)`.
"""

from __future__ import annotations

import logging

import torch

from avatarbot import errors, messages
from avatarbot.avatar.engine import (
    QUALITY_SHORT_SIDE,
    CancelCheck,
    Clip,
    Progress,
    ProgressCallback,
    RenderOptions,
    frame_count_for,
)
from avatarbot.avatar.hunyuan.conditioning import resample_to_16k
from avatarbot.media.types import Audio, Photo

log = logging.getLogger(__name__)


def build_pipeline(hunyuan, device, context_parallel: bool = False):
    """The pipeline the `[hunyuan]` settings describe, on `device`; context parallelism only in
    a worker that owns several GPUs (`avatarbot worker --gpus`, see `parallel`)."""
    from avatarbot.avatar.hunyuan.pipeline import HunyuanVideoAvatarPipeline

    return HunyuanVideoAvatarPipeline.from_pretrained(
        hunyuan.weights_dir,
        dtype=hunyuan.dtype,
        offload=hunyuan.offload,
        text_tokens=hunyuan.text_tokens,
        device=device,
        cfg_batch=hunyuan.cfg_batch,
        attention=hunyuan.attention,
        fp8_compute=hunyuan.fp8_compute,
        compile=hunyuan.compile,
        compile_cache_dir=hunyuan.compile_cache_dir,
        context_parallel=hunyuan.context_parallel if context_parallel else "none",
    )


class HunyuanEngine:
    name = "hunyuan"

    def __init__(
        self,
        pipeline,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        step_cache: bool = True,
        quality_short_side: dict[str, int] | None = None,
    ):
        self.pipeline = pipeline
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.step_cache = step_cache
        # Tests map the presets to tiny sizes; production uses the 384/512/704 buckets.
        self.quality_short_side = quality_short_side or QUALITY_SHORT_SIDE

    @classmethod
    def from_settings(cls, settings, device: str = "cuda") -> HunyuanEngine:
        """From the whole Settings (or a HunyuanSettings). Refuses early, with the list of what is
        missing, when the weights directory is incomplete. `device="cpu"` is for tests on tiny
        converted weights; a real model needs the GPU."""
        from avatarbot.avatar.hunyuan.weights import check_weights

        hunyuan = getattr(settings, "hunyuan", settings)
        problems = check_weights(hunyuan.weights_dir)
        if problems:
            raise errors.RenderError(messages.RENDER_FAILED, detail="; ".join(problems))
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise errors.RenderError(messages.RENDER_FAILED, detail="engine hunyuan needs a CUDA GPU; none is visible")
        if hunyuan.gpus_per_render > 1:
            from avatarbot.avatar.hunyuan import parallel, speed

            try:  # before any rank is started: a refused combination leaves no process behind
                speed.check_modes(hunyuan.cfg_batch, hunyuan.attention, hunyuan.context_parallel)
            except ValueError as error:
                raise errors.RenderError(messages.RENDER_FAILED, detail=f"hunyuan settings: {error}") from error

            group = parallel.start_group(hunyuan.gpus_per_render, hunyuan.model_dump_json())
            pipeline = parallel.ParallelPipeline(build_pipeline(hunyuan, group.device, context_parallel=True), group)
        else:
            pipeline = build_pipeline(hunyuan, device)
        return cls(
            pipeline,
            num_inference_steps=hunyuan.num_inference_steps,
            guidance_scale=hunyuan.guidance_scale,
            step_cache=hunyuan.step_cache,
        )

    def render(
        self,
        photo: Photo,
        audio: Audio,
        options: RenderOptions,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> Clip:
        def cancelled() -> bool:
            return should_cancel is not None and should_cancel()

        if cancelled():
            raise errors.RenderCancelled(messages.CANCELLED, detail="hunyuan render cancelled before it started")
        if progress is not None:
            progress(Progress("preparing", 0, 1))
        samples = resample_to_16k(audio.samples, audio.sample_rate)
        frame_count = frame_count_for(audio.duration)
        face = photo.main_face or (photo.faces[0] if photo.faces else None)
        quality = self.quality_short_side[options.quality]
        if self.pipeline.face_detector is not None:  # the detector the pipeline will use for the mask
            pixels = self.pipeline.render_pixels(photo.rgb, quality)
            face_found = self.pipeline.face_box(photo.rgb, pixels) is not None
        else:
            face_found = face is not None
        notes = [] if face_found else [messages.NO_FACE_NOTE]

        def on_step(done: int, total: int) -> None:
            if progress is not None:
                progress(Progress("rendering", done, total))
            if cancelled():
                raise errors.RenderCancelled(messages.CANCELLED, detail=f"hunyuan render cancelled after step {done}")

        try:
            frames = self.pipeline(
                image=photo.rgb,
                audio=samples,
                prompt=options.prompt,
                num_inference_steps=self.num_inference_steps,
                guidance=self.guidance_scale,
                step_cache=self.step_cache,
                motion=options.motion,
                quality=quality,
                seed=options.seed,
                callback=on_step,
                face_box=face.box if face is not None else None,
                num_frames=frame_count,
            )
        except torch.cuda.OutOfMemoryError as exc:
            raise errors.OutOfMemoryError(messages.OUT_OF_MEMORY, detail=f"hunyuan: {exc}") from exc
        except (errors.AvatarbotError, KeyboardInterrupt):
            raise
        except Exception as exc:
            log.exception("hunyuan render failed")
            raise errors.RenderError(messages.RENDER_FAILED, detail=f"hunyuan: {exc!r}") from exc
        height, width = frames.shape[1:3]
        return Clip(frames=iter(frames), frame_count=len(frames), width=width, height=height, notes=notes)
