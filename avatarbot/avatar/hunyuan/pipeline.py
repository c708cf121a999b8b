"""HunyuanVideoAvatarPipeline: photo + audio (+ prompt) -> video frames.

The recipe (see `schedule` for each rule): the photo scaled to a size bucket and repeated through
the VAE as reference latents; whisper features per video frame; flow-matching Euler with shift 5;
two-phase classifier-free guidance; the clip denoised as shifted windows of 33 latent frames, so it
may be as long as the audio; optionally the step cache (20 of 50 steps run only the last block).

Memory: components not in use can live on the CPU (`offload="model"`), and the transformer's
blocks can be streamed to the GPU one at a time (`offload="block"`, diffusers group offloading).

Speed (see `speed` and `parallel`): by default each guidance branch runs as its own batch of one
with its own prompt and text mask, and the joint attention needs no mask, so any kernel serves it.
`cfg_batch=True` runs both branches as one batch of two (the shorter prompt padded, with a key
mask over its padded rows: the same result, twice the activations, the weights read once).
`attention` picks the kernel, `fp8_compute` multiplies the blocks' linears in fp8, `compile`
compiles the blocks, and `context_parallel` splits each forward's sequence across the GPUs of an
initialised process group.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from avatarbot.avatar.engine import QUALITY_SHORT_SIDE
from avatarbot.avatar.hunyuan import schedule, speed
from avatarbot.avatar.hunyuan.conditioning import (
    NEGATIVE_PROMPT,
    face_mask,
    full_prompt,
    stack_prompts,
)
from avatarbot.avatar.hunyuan.model import BlockCache
from avatarbot.avatar.hunyuan.vae import VaeRuntime, configure_vae

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0
# Above this many bytes the step cache's per-frame video tokens are kept in CPU memory (a 60 s
# clip at 704 px would otherwise hold ~15 GB of cache on the GPU).
STEP_CACHE_DEVICE_BYTES = 4 * 1024**3

StepCallback = Callable[[int, int], None]  # (steps done, total); may raise to stop the render


@dataclass
class _BranchCache:
    """Cached last-block inputs of one guidance branch (or of both, batched), filed per latent frame."""

    total_latents: int
    video: torch.Tensor | None = None  # (b, total_latents, tokens_per_frame, d), made at first use
    owners: dict = field(default_factory=dict)  # latent frame -> (reference, text, text mask) of its window


class HunyuanVideoAvatarPipeline:
    def __init__(
        self,
        transformer,
        vae,
        prompt_encoder,
        audio_encoder,
        device: str | torch.device = "cpu",
        offload: str = "none",
        latent_window: int = schedule.LATENT_WINDOW,
        vae_runtime: VaeRuntime | None = None,
        face_detector=None,
        cfg_batch: bool = False,
        attention: str = "sdpa",
        fp8_compute: bool = False,
        compile: bool = False,
        compile_cache_dir: str | None = None,
        context_parallel: str = "none",
    ):
        speed.check_modes(cfg_batch, attention, context_parallel)
        self.transformer, self.vae = transformer, vae
        self.cfg_batch = cfg_batch
        self.face_detector = face_detector  # upstream's (face_detector.UpstreamFaceDetector) or None
        self.prompt_encoder, self.audio_encoder = prompt_encoder, audio_encoder
        self.device = torch.device(device)
        self.offload = offload
        self.latent_window = latent_window
        configure_vae(vae, vae_runtime)  # upstream's tiles and mid-block attention
        if offload != "block":
            transformer.to(self.device)
        if fp8_compute:  # block by block on the GPU; with block offload, back to CPU memory after
            speed.enable_fp8_compute(transformer, self.device)
        if offload == "block":
            # No CUDA-stream prefetching: it assumes every forward runs the same blocks in the same
            # order, and cached steps run only the last one.
            transformer.enable_group_offload(
                onload_device=self.device, offload_type="block_level", num_blocks_per_group=1, use_stream=False
            )
        speed.set_attention(transformer, attention)
        if context_parallel != "none":
            from avatarbot.avatar.hunyuan.parallel import enable_context_parallel

            enable_context_parallel(transformer, context_parallel)
        if compile:
            speed.compile_blocks(transformer, compile_cache_dir)
        if face_detector is not None:
            face_detector.to(self.device)  # a few MB; it runs once per job
        for module in self._helper_modules():
            module.to(self.device if offload == "none" else "cpu")

    @classmethod
    def from_pretrained(
        cls,
        directory,
        dtype: str = "bf16",
        offload: str = "none",
        device="cuda",
        text_tokens: str = "upstream",
        **speed_modes,
    ):
        """speed_modes: cfg_batch, attention, fp8_compute, compile, compile_cache_dir, context_parallel."""
        from avatarbot.avatar.hunyuan.weights import load_components

        helper_dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
        parts = load_components(
            directory, dtype=dtype, device="cpu", helper_dtype=helper_dtype, text_tokens=text_tokens
        )
        return cls(
            parts.transformer,
            parts.vae,
            parts.prompt_encoder,
            parts.audio_encoder,
            device=device,
            offload=offload,
            vae_runtime=parts.vae_runtime,
            face_detector=parts.face_detector,
            **speed_modes,
        )

    # --- device juggling -----------------------------------------------------------------------
    def _helper_modules(self) -> list[torch.nn.Module]:
        return [self.vae, *self.prompt_encoder.modules, *self.audio_encoder.modules]

    @contextlib.contextmanager
    def _on_device(self, *modules: torch.nn.Module):
        """Text encoders, whisper and the VAE come to the GPU only while they work."""
        if self.offload == "none":
            yield
            return
        for module in modules:
            module.to(self.device)
        try:
            yield
        finally:
            for module in modules:
                module.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    @property
    def _dtype(self) -> torch.dtype:
        return self.transformer.x_embedder.proj.weight.dtype  # never fp8 (only block linears are)

    # --- conditioning --------------------------------------------------------------------------
    @staticmethod
    def render_pixels(image: np.ndarray, quality: str | int) -> np.ndarray:
        """The photo at its render size (a preset name or a short side in pixels)."""
        short_side = QUALITY_SHORT_SIDE[quality] if isinstance(quality, str) else int(quality)
        width, height = schedule.render_size(image.shape[1], image.shape[0], short_side)
        return np.array(Image.fromarray(image).resize((width, height), Image.LANCZOS))

    def face_box(self, image: np.ndarray, pixels: np.ndarray, given=None):
        """The face box in render pixels that the face mask grows from, or None for none.
        Upstream's detector, when loaded, looks at the render-size photo as upstream's does;
        otherwise the box the caller found in `image` (our own detector) is scaled over."""
        if self.face_detector is not None:
            return self.face_detector.main_box(pixels)
        if given is None:
            return None
        sx, sy = pixels.shape[1] / image.shape[1], pixels.shape[0] / image.shape[0]
        return (given[0] * sx, given[1] * sy, given[2] * sx, given[3] * sy)

    def _reference_latents(self, pixels: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        """The photo repeated over one window of video frames, through the VAE, a sample of the
        posterior (hymm_sp/sample_inference_audio.py: `latent_dist.sample()`). Upstream draws it
        from the unseeded global RNG; we draw it from the job's generator, so a seed still
        reproduces a clip."""
        frames = schedule.video_frames_for(self.latent_window)
        video = torch.from_numpy(np.array(pixels)).float().div(127.5).sub(1.0).permute(2, 0, 1)
        video = video[None, :, None].expand(-1, -1, frames, -1, -1)
        with self._on_device(self.vae):
            latents = self.vae.encode(video.to(self.device, self.vae.dtype)).latent_dist.sample(generator)
        return latents.float() * self.vae.config.scaling_factor

    def _face_mask(self, box, width: int, height: int, latent_h: int, latent_w: int) -> torch.Tensor:
        mask = torch.from_numpy(face_mask(box, width, height))[None, None]
        mask = F.interpolate(mask, size=(latent_h, latent_w), mode="bilinear", align_corners=False)
        return mask[:, :, None].to(self.device)  # (1, 1, 1, h, w)

    # --- the transformer call ------------------------------------------------------------------
    def _predict(self, latents, t, ref, prompt, audio, mask, motion, fps, cache: _BranchCache | None, window, full):
        """Velocity for `latents` (b, ...) with `prompt` and `audio` of the same batch b (one
        guidance branch, or both batched); the reference, face mask, motion and fps are shared."""
        dtype = self._dtype
        batch = latents.shape[0]
        kwargs = dict(
            hidden_states=latents.to(dtype),
            timestep=torch.full((batch,), t, device=self.device),
            ref_latents=ref.to(dtype).expand(batch, -1, -1, -1, -1),
            encoder_hidden_states=prompt.states.to(self.device, dtype),
            encoder_attention_mask=None if prompt.mask is None else prompt.mask.to(self.device),
            pooled_projections=prompt.pooled.to(self.device, dtype),
            audio_embeds=audio.to(self.device, dtype),
            face_mask=mask.to(dtype).expand(batch, -1, -1, -1, -1),
            motion_exp=motion[0].expand(batch, -1),
            motion_pose=motion[1].expand(batch, -1),
            fps=fps.expand(batch),
        )
        if cache is None:
            return self.transformer(**kwargs).sample.float()
        if full:
            out = self.transformer(**kwargs, return_block_cache=True)
            self._store(cache, out.block_cache, window)
            return out.sample.float()
        reference, text, text_mask = cache.owners[window[0]]
        video = cache.video[:, window].to(self.device, non_blocking=True)
        block_cache = BlockCache(reference=reference, video=video, text=text, text_mask=text_mask)
        return self.transformer(**kwargs, block_cache=block_cache).sample.float()

    def _store(self, cache: _BranchCache, block: BlockCache, window: list[int]) -> None:
        if cache.video is None:
            shape = (block.video.shape[0], cache.total_latents, *block.video.shape[2:])
            nbytes = int(np.prod(shape)) * block.video.element_size()
            where = self.device if nbytes <= STEP_CACHE_DEVICE_BYTES else torch.device("cpu")
            cache.video = torch.zeros(shape, dtype=block.video.dtype, device=where)
        cache.video[:, window] = block.video.to(cache.video.device)
        for frame in window:
            cache.owners[frame] = (block.reference, block.text, block.text_mask)

    def _guidance_pair(self, chunk, t, ref, prompts, audios, mask, motion, fps, caches, window, full):
        """(conditional, unconditional) velocity: two batches of one, or one batch of two."""
        if self.cfg_batch:
            both = self._predict(
                chunk.expand(2, -1, -1, -1, -1), t, ref, stack_prompts(prompts), torch.cat(audios),
                mask, motion, fps, caches and caches["both"], window, full,
            )  # fmt: skip
            return both[:1], both[1:]
        return tuple(
            self._predict(chunk, t, ref, prompt, audio, mask, motion, fps, caches and caches[name], window, full)
            for prompt, audio, name in zip(prompts, audios, ("cond", "uncond"), strict=True)
        )

    # --- __call__ ------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        image: np.ndarray,
        audio: np.ndarray,
        prompt: str = "",
        num_inference_steps: int = 50,
        guidance: float = schedule.DEFAULT_GUIDANCE,
        motion: float = 1.0,
        quality: str | int = "standard",
        seed: int = 0,
        callback: StepCallback | None = None,
        face_box: tuple[float, float, float, float] | None = None,
        num_frames: int | None = None,
        step_cache: bool = True,
    ) -> np.ndarray:
        """Frames (num_frames, height, width, 3) uint8 at 25 fps.

        image: (H, W, 3) uint8 RGB. audio: 16 kHz mono float32. quality: a preset name or a short
        side in pixels. face_box: (x0, y0, x1, y1) in `image` pixels, None for no face (then the
        whole frame may move); ignored when upstream's face detector is loaded (see `face_box`).
        num_frames: defaults to the audio's length at 25 fps.
        callback(done, total) runs after every step; raise from it to cancel.
        """
        pixels = self.render_pixels(image, quality)
        height, width = pixels.shape[:2]
        face_box = self.face_box(image, pixels, face_box)
        if num_frames is None:
            num_frames = max(1, int(np.ceil(len(audio) / schedule.WHISPER_SAMPLE_RATE * DEFAULT_FPS - 1e-6)))
        window = self.latent_window
        out_latents = schedule.decoded_latents(num_frames, window)
        total = schedule.denoise_length(num_frames, window)

        # Conditioning, each encoder on the GPU only while it works.
        with self._on_device(*self.prompt_encoder.modules):
            cond_prompt = self.prompt_encoder.encode(full_prompt(prompt), pixels)
            neg_prompt = self.prompt_encoder.encode(NEGATIVE_PROMPT, pixels)
        with self._on_device(*self.audio_encoder.modules):
            features = self.audio_encoder.frame_features(audio, num_frames)
        audio_all = features.new_zeros((schedule.VAE_TIME_STRIDE * total, *features.shape[1:]))
        audio_all[:num_frames] = features
        silent = audio_all.new_zeros((schedule.video_frames_for(window), *features.shape[1:]))[None]
        generator = torch.Generator("cpu").manual_seed(seed)
        ref = self._reference_latents(pixels, generator).to(self.device)
        latent_h, latent_w = ref.shape[-2:]
        mask = self._face_mask(face_box, width, height, latent_h, latent_w)
        exp_bucket, pose_bucket = schedule.motion_buckets(motion)
        buckets = self.transformer.config.motion_buckets
        motion_values = (
            torch.full((1, buckets), exp_bucket, device=self.device),
            torch.full((1, buckets), pose_bucket, device=self.device),
        )
        fps = torch.full((1,), DEFAULT_FPS, device=self.device)

        channels = self.transformer.config.in_channels
        latents = torch.randn((1, channels, total, latent_h, latent_w), generator=generator).to(self.device)
        sigmas = schedule.flow_sigmas(num_inference_steps)
        timesteps = schedule.flow_timesteps(num_inference_steps)
        full = schedule.full_steps(num_inference_steps) if step_cache else set(range(num_inference_steps))
        caches = None
        if step_cache and len(full) < num_inference_steps:
            caches = {name: _BranchCache(total) for name in ("cond", "uncond", "both")}

        for step in range(num_inference_steps):
            phase = schedule.guidance_for_step(step, num_inference_steps, guidance)
            step_mask = mask * phase.face_mask_scale
            uncond_prompt = neg_prompt if phase.text_guidance else cond_prompt
            summed = torch.zeros_like(latents)
            counts = torch.zeros(total, device=self.device)
            for frames in schedule.windows_for_step(step, total, window, schedule.WINDOW_SHIFT):
                index = torch.tensor(frames, device=self.device)
                chunk = latents[:, :, index]
                audio_index = torch.tensor(schedule.audio_frames_for_window(frames[0], total, window))
                heard = audio_all[audio_index][None]
                cond, uncond = self._guidance_pair(
                    chunk, float(timesteps[step]), ref, (cond_prompt, uncond_prompt), (heard, silent),
                    step_mask, motion_values, fps, caches, frames, step in full,
                )  # fmt: skip
                velocity = schedule.apply_guidance(uncond, cond, phase.scale)
                stepped = schedule.euler_step(chunk, velocity, float(sigmas[step]), float(sigmas[step + 1]))
                summed.index_add_(2, index, stepped)
                counts.index_add_(0, index, torch.ones(len(frames), device=self.device))
            latents = summed / counts.view(1, 1, -1, 1, 1)
            if callback is not None:
                callback(step + 1, num_inference_steps)

        return self._decode(latents[:, :, :out_latents], num_frames)

    def _decode(self, latents: torch.Tensor, num_frames: int) -> np.ndarray:
        with self._on_device(self.vae):
            video = self.vae.decode((latents / self.vae.config.scaling_factor).to(self.vae.dtype)).sample
        video = video[0, :, :num_frames].float().clamp(-1, 1).add(1).mul(127.5).round()
        return video.permute(1, 2, 3, 0).to(torch.uint8).cpu().numpy()
