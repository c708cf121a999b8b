"""The HunyuanVideo-Avatar transformer, assembled from diffusers' HunyuanVideo building blocks.

The backbone (patch embed, token refiner, 20 double-stream + 40 single-stream blocks, output
norm) is diffusers' HunyuanVideo transformer. Avatar adds, each with its own checkpoint keys:

- the reference image: its latents (the photo repeated through the VAE) are patch-embedded by
  `ref_embedder`, projected by `ref_proj` and added to the noisy tokens; the first reference latent
  frame, embedded like the video, is prepended as extra tokens at RoPE time index -1;
- the audio: `audio_proj` turns each frame's whisper window (10 tokens x 5 hidden states x 384)
  into 4 tokens, and after double blocks 1, 3, ..., 19 an `audio_adapters` cross-attention lets
  each latent frame's video tokens read that frame's 16 audio tokens; its output is masked to the
  face region and added to the video tokens only (never to the reference tokens);
- motion and frame-rate embeddings (`motion_exp_embedder`, `motion_pose_embedder`,
  `fps_embedder`) added to the timestep embedding.

Everything is sized from the config, so a tiny config runs on a CPU in tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput
from diffusers.models.embeddings import (
    TimestepEmbedding,
    Timesteps,
    get_1d_rotary_pos_embed,
)
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import AdaLayerNormContinuous
from diffusers.models.transformers.transformer_hunyuan_video import (
    HunyuanVideoConditionEmbedding,
    HunyuanVideoPatchEmbed,
    HunyuanVideoSingleTransformerBlock,
    HunyuanVideoTokenRefiner,
    HunyuanVideoTransformerBlock,
)
from torch import nn

# Audio frames per latent frame (the VAE's time stride): each latent frame reads 4 frames x 4 tokens.
AUDIO_FRAMES_PER_LATENT = 4
# Timestep-style embeddings use 256 sinusoidal features, cos first, as upstream does.
SINUSOID_CHANNELS = 256


class AudioProjection(nn.Module):
    """Whisper window of one video frame -> a few tokens in the transformer's width (a 3-layer MLP,
    upstream `audio_proj`)."""

    def __init__(
        self, window: int, num_states: int, channels: int, intermediate_dim: int, output_dim: int, tokens: int
    ):
        super().__init__()
        self.tokens = tokens
        self.output_dim = output_dim
        self.proj1 = nn.Linear(window * num_states * channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, tokens * output_dim)
        self.norm = nn.LayerNorm(output_dim)

    def forward(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        # (batch, frames, window, states, channels) -> (batch, frames, tokens, dim)
        batch, frames = audio_embeds.shape[:2]
        x = audio_embeds.reshape(batch * frames, -1)
        x = torch.relu(self.proj1(x))
        x = torch.relu(self.proj2(x))
        x = self.proj3(x).reshape(batch, frames, self.tokens, self.output_dim)
        return self.norm(x)


class AudioAdapter(nn.Module):
    """Single-head cross-attention from a latent frame's video tokens to its audio tokens
    (upstream `PerceiverAttentionCA`; its `heads` argument is unused, so one head of `inner_dim`).

    Each token reads only its own frame's audio tokens: upstream reshapes the video to one row per
    frame; here every token carries its frame index and a mask keeps the other frames' keys out
    (the same softmax, exactly zero weight elsewhere). Token-wise, the adapter runs unchanged on any
    slice of the sequence, which is what context parallelism hands each GPU."""

    def __init__(self, dim: int, inner_dim: int):
        super().__init__()
        self.norm_audio = nn.LayerNorm(dim)
        self.norm_video = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner_dim, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)

    def forward(self, audio_tokens: torch.Tensor, tokens: torch.Tensor, frame_index: torch.Tensor) -> torch.Tensor:
        # audio_tokens (b, t, a, d), tokens (b, n, d), frame_index (n,) -> (b, n, d)
        batch, frames, per_frame, _ = audio_tokens.shape
        query = self.to_q(self.norm_video(tokens))
        key, value = self.to_kv(self.norm_audio(audio_tokens)).flatten(1, 2).chunk(2, dim=-1)
        key_frame = torch.arange(frames, device=tokens.device).repeat_interleave(per_frame)
        own_frame = frame_index[:, None] == key_frame[None, :]  # (n, t * a)
        return self.to_out(F.scaled_dot_product_attention(query, key, value, attn_mask=own_frame))


def adapter_layers(num_layers: int, configured: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The double blocks followed by an audio adapter: `configured`, else every odd one
    (1, 3, ..., 19 in the 20-block model, as upstream's hymm_sp/modules/models_audio.py)."""
    return tuple(range(1, num_layers, 2)) if configured is None else tuple(configured)


@dataclass
class BlockCache:
    """The input of the last single-stream block at a full step, split so the pipeline can file
    the video part per latent frame (the windows move between steps)."""

    reference: torch.Tensor  # (b, ref_tokens, d)
    video: torch.Tensor  # (b, frames, tokens_per_frame, d)
    text: torch.Tensor  # (b, text_tokens, d); under context parallelism, this GPU's share
    text_mask: torch.Tensor | None = None  # (b, text_tokens) bool; None when every row is valid


@dataclass
class AvatarTransformerOutput:
    sample: torch.Tensor  # predicted velocity, shaped like the input latents
    block_cache: BlockCache | None = None


def avatar_rotary_embedding(
    frames: int, height: int, width: int, axes_dim: tuple[int, ...], theta: float, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE (cos, sin) for a token grid of `frames` + 1 frames whose first frame (the reference
    tokens) sits at time index -1, before the video's frame 0."""
    axes = [
        torch.arange(-1, frames, device=device, dtype=torch.float32),
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
    ]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)
    cos, sin = [], []
    for axis, dim in enumerate(axes_dim):
        c, s = get_1d_rotary_pos_embed(dim, grid[axis].reshape(-1), theta, use_real=True)
        cos.append(c)
        sin.append(s)
    return torch.cat(cos, dim=1), torch.cat(sin, dim=1)


class HunyuanAvatarTransformer3DModel(ModelMixin, ConfigMixin):
    """Noisy video latents + reference latents + prompt + audio -> velocity (flow matching)."""

    _supports_gradient_checkpointing = False
    _skip_layerwise_casting_patterns = [
        "x_embedder",
        "ref_embedder",
        "context_embedder",
        "time_text_embed",
        "embedder",
        "audio_proj",
        "norm",
    ]
    _no_split_modules = ["HunyuanVideoTransformerBlock", "HunyuanVideoSingleTransformerBlock", "AudioAdapter"]
    _repeated_blocks = ["HunyuanVideoTransformerBlock", "HunyuanVideoSingleTransformerBlock"]  # torch.compile units
    # Context parallelism (diffusers `enable_parallelism`): every per-token input is split along the
    # sequence where it enters the blocks; the step cache and the output are gathered whole. The
    # blocks, their attention (Ulysses all-to-all or ring, in diffusers' dispatcher) and the audio
    # adapters (token-wise) then run on each GPU's share. "Anything" sharding in the config allows
    # lengths that do not divide by the GPU count (the text rows rarely do).
    # The step cache keeps each GPU's share of the text rows (they never change between the
    # steps that use them), so only the video tokens are gathered for it.
    _cp_plan = {
        "token_sequence": {
            0: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True),  # tokens
            1: ContextParallelInput(split_dim=0, expected_dims=2, split_output=True),  # rope cos
            2: ContextParallelInput(split_dim=0, expected_dims=2, split_output=True),  # rope sin
            3: ContextParallelInput(split_dim=0, expected_dims=1, split_output=True),  # frame index
            4: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True),  # audio write mask
        },
        "text_sequence": {0: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True)},
        "cache_gather": [ContextParallelOutput(gather_dim=1, expected_dims=3)],
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }

    @register_to_config
    def __init__(
        self,
        in_channels: int = 16,
        out_channels: int = 16,
        num_attention_heads: int = 24,
        attention_head_dim: int = 128,
        num_layers: int = 20,
        num_single_layers: int = 40,
        num_refiner_layers: int = 2,
        mlp_ratio: float = 4.0,
        patch_size: int = 2,
        patch_size_t: int = 1,
        qk_norm: str = "rms_norm",
        text_embed_dim: int = 4096,
        pooled_projection_dim: int = 768,
        rope_theta: float = 256.0,
        rope_axes_dim: tuple[int, ...] = (16, 56, 56),
        audio_window: int = 10,
        audio_states: int = 5,
        audio_channels: int = 384,
        audio_intermediate_dim: int = 1024,
        audio_tokens_per_frame: int = 4,
        audio_adapter_dim: int = 1024,
        audio_adapter_layers: tuple[int, ...] | None = None,
        motion_buckets: int = 4,
    ) -> None:
        super().__init__()
        inner_dim = num_attention_heads * attention_head_dim
        if sum(rope_axes_dim) != attention_head_dim:
            raise ValueError(f"rope_axes_dim {rope_axes_dim} must sum to attention_head_dim {attention_head_dim}")
        if inner_dim % motion_buckets:
            raise ValueError(f"hidden size {inner_dim} must divide into {motion_buckets} motion buckets")
        audio_adapter_layers = adapter_layers(num_layers, audio_adapter_layers)
        if any(not 0 <= i < num_layers for i in audio_adapter_layers):
            raise ValueError(f"audio_adapter_layers {audio_adapter_layers} must lie in 0..{num_layers - 1}")
        patch = (patch_size_t, patch_size, patch_size)

        self.x_embedder = HunyuanVideoPatchEmbed(patch, in_channels, inner_dim)
        self.ref_embedder = HunyuanVideoPatchEmbed(patch, in_channels, inner_dim)
        self.ref_proj = nn.Linear(inner_dim, inner_dim)
        self.context_embedder = HunyuanVideoTokenRefiner(
            text_embed_dim, num_attention_heads, attention_head_dim, num_layers=num_refiner_layers
        )
        self.time_text_embed = HunyuanVideoConditionEmbedding(inner_dim, pooled_projection_dim, guidance_embeds=False)
        self.sinusoids = Timesteps(SINUSOID_CHANNELS, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.motion_exp_embedder = TimestepEmbedding(SINUSOID_CHANNELS, inner_dim // motion_buckets)
        self.motion_pose_embedder = TimestepEmbedding(SINUSOID_CHANNELS, inner_dim // motion_buckets)
        self.fps_embedder = TimestepEmbedding(SINUSOID_CHANNELS, inner_dim)
        self.audio_proj = AudioProjection(
            audio_window, audio_states, audio_channels, audio_intermediate_dim, inner_dim, audio_tokens_per_frame
        )

        self.transformer_blocks = nn.ModuleList(
            [
                HunyuanVideoTransformerBlock(
                    num_attention_heads, attention_head_dim, mlp_ratio=mlp_ratio, qk_norm=qk_norm
                )
                for _ in range(num_layers)
            ]
        )
        self.audio_adapters = nn.ModuleList([AudioAdapter(inner_dim, audio_adapter_dim) for _ in audio_adapter_layers])
        self._adapter_after = {layer: index for index, layer in enumerate(audio_adapter_layers)}
        self.single_transformer_blocks = nn.ModuleList(
            [
                HunyuanVideoSingleTransformerBlock(
                    num_attention_heads, attention_head_dim, mlp_ratio=mlp_ratio, qk_norm=qk_norm
                )
                for _ in range(num_single_layers)
            ]
        )
        self.token_sequence = SequencePoint()
        self.text_sequence = SequencePoint()
        self.cache_gather = SequencePoint()
        self.norm_out = AdaLayerNormContinuous(inner_dim, inner_dim, elementwise_affine=False, eps=1e-6)
        self.proj_out = nn.Linear(inner_dim, patch_size_t * patch_size * patch_size * out_channels)

    # --- pieces --------------------------------------------------------------------------------
    def _embed_sinusoid(self, embedder: TimestepEmbedding, values: torch.Tensor, dtype) -> torch.Tensor:
        return embedder(self.sinusoids(values.reshape(-1).float()).to(dtype))

    def _conditioning(self, timestep, pooled, motion_exp, motion_pose, fps) -> torch.Tensor:
        batch = pooled.shape[0]
        temb, _ = self.time_text_embed(timestep, pooled)
        dtype = temb.dtype
        temb = temb + self._embed_sinusoid(self.motion_exp_embedder, motion_exp, dtype).reshape(batch, -1)
        temb = temb + self._embed_sinusoid(self.motion_pose_embedder, motion_pose, dtype).reshape(batch, -1)
        return temb + self._embed_sinusoid(self.fps_embedder, fps, dtype).reshape(batch, -1)

    def _audio_tokens(self, audio_embeds: torch.Tensor, frames: int) -> torch.Tensor:
        """(b, 4T-3, window, states, ch) -> (b, T, 16, d): the first frame is repeated so that every
        latent frame reads 4 audio frames, as the causal VAE packs 4 video frames per latent."""
        expected = AUDIO_FRAMES_PER_LATENT * frames - (AUDIO_FRAMES_PER_LATENT - 1)
        if audio_embeds.shape[1] != expected:
            raise ValueError(f"{frames} latent frames need {expected} audio frames, got {audio_embeds.shape[1]}")
        tokens = self.audio_proj(audio_embeds)
        lead = tokens[:, :1].expand(-1, AUDIO_FRAMES_PER_LATENT - 1, -1, -1)
        tokens = torch.cat([lead, tokens], dim=1)
        batch, _, per_frame, dim = tokens.shape
        return tokens.reshape(batch, frames, AUDIO_FRAMES_PER_LATENT * per_frame, dim)

    @staticmethod
    def _joined_text(text: torch.Tensor, text_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The text rows the double and single blocks join with the video: the first mask.sum()
        rows, whatever the mask's pattern. Upstream (hymm_sp/modules/models_audio.py with
        parallel_states.get_cu_seqlens) packs video + the first mask.sum() text rows as one
        attention sequence and the remaining rows as another that never reaches the video;
        dropping those rows gives the video the same result, with no mask in the attention.

        A batch whose rows count different lengths (both guidance branches in one batch: the
        positive and the negative prompt) keeps the longest and returns a key mask (b, rows), True
        where a row is one of its own first mask.sum(); upstream runs each branch alone, and the
        key mask gives every branch's video exactly the keys it would see alone."""
        if text_mask is None:
            return text, None
        lengths = text_mask.sum(dim=1)
        longest = int(lengths.max())
        if bool((lengths == longest).all()):
            return text[:, :longest], None
        rows = torch.arange(longest, device=text.device)
        return text[:, :longest], rows[None, :] < lengths[:, None]

    # --- forward -------------------------------------------------------------------------------
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        ref_latents: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
        audio_embeds: torch.Tensor,
        face_mask: torch.Tensor,
        motion_exp: torch.Tensor,
        motion_pose: torch.Tensor,
        fps: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        block_cache: BlockCache | None = None,
        return_block_cache: bool = False,
    ) -> AvatarTransformerOutput:
        """
        hidden_states, ref_latents: (b, c, t, h, w) latents; the reference has the same shape.
        encoder_hidden_states: (b, l, text_embed_dim); pooled_projections: (b, pooled_dim).
        encoder_attention_mask: (b, l) upstream's text mask (see `_joined_text`), or None.
        audio_embeds: (b, 4t-3, window, states, channels) whisper windows, one per video frame.
        face_mask: (b, 1, 1 or t, h', w'), 1 where audio may move the picture (any size; resized).
        motion_exp, motion_pose: (b, motion_buckets); fps: (b,).
        block_cache: when given, skip to the last single-stream block with this as its input.
        """
        batch, _, frames, height, width = hidden_states.shape
        p, p_t = self.config.patch_size, self.config.patch_size_t
        grid_t, grid_h, grid_w = frames // p_t, height // p, width // p
        tokens_per_frame = grid_h * grid_w
        ref_len = tokens_per_frame  # the reference frame's tokens come first

        temb = self._conditioning(timestep, pooled_projections, motion_exp, motion_pose, fps)
        rope_cos, rope_sin = avatar_rotary_embedding(
            grid_t, grid_h, grid_w, tuple(self.config.rope_axes_dim), self.config.rope_theta, hidden_states.device
        )
        # Per token: its latent frame (the reference counts as frame 0; it never hears audio) and
        # where the audio may write (the face mask on video tokens, nothing on the reference).
        frame_index = torch.arange(-1, grid_t, device=hidden_states.device).clamp(min=0)
        frame_index = frame_index.repeat_interleave(tokens_per_frame)

        if block_cache is None:
            video = self.x_embedder(hidden_states) + self.ref_proj(self.ref_embedder(ref_latents))
            reference = self.x_embedder(ref_latents[:, :, :1])
            tokens = torch.cat([reference, video], dim=1)
            # The token refiner applies the mask row by row, as upstream's does
            # (hymm_sp/modules/token_refiner.py; diffusers' HunyuanVideoTokenRefiner follows it).
            text = self.context_embedder(encoder_hidden_states, timestep, encoder_attention_mask)
            text, text_mask = self._joined_text(text, encoder_attention_mask)
            (text,) = self.text_sequence(text)
        else:
            tokens = torch.cat([block_cache.reference, block_cache.video.flatten(1, 2)], dim=1)
            text, text_mask = block_cache.text, block_cache.text_mask  # the joined rows (this GPU's share)

        writes = F.interpolate(face_mask.to(tokens.dtype), size=(grid_t, grid_h, grid_w), mode="nearest")
        writes = torch.cat([writes.new_zeros(batch, tokens_per_frame), writes.reshape(batch, -1)], dim=1)[..., None]
        tokens, rope_cos, rope_sin, frame_index, writes = self.token_sequence(
            tokens, rope_cos, rope_sin, frame_index, writes
        )
        rope = (rope_cos, rope_sin)
        attention_mask = None
        if text_mask is not None:  # both guidance branches in one batch, texts of two lengths
            attention_mask = torch.cat([text_mask.new_ones(batch, tokens.shape[1]), text_mask], dim=1)[:, None, None]

        if block_cache is None:
            audio = self._audio_tokens(audio_embeds.to(tokens.dtype), grid_t)
            for layer, block in enumerate(self.transformer_blocks):
                tokens, text = block(tokens, text, temb, attention_mask, rope)
                adapter_index = self._adapter_after.get(layer)
                if adapter_index is not None:
                    tokens = tokens + self.audio_adapters[adapter_index](audio, tokens, frame_index) * writes
            for block in self.single_transformer_blocks[:-1]:
                tokens, text = block(tokens, text, temb, attention_mask, rope)

        cache = None
        if return_block_cache:
            (whole,) = self.cache_gather(tokens)
            cache = BlockCache(
                reference=whole[:, :ref_len],
                video=whole[:, ref_len:].reshape(batch, grid_t, tokens_per_frame, -1),
                text=text,
                text_mask=text_mask,
            )
        tokens, text = self.single_transformer_blocks[-1](tokens, text, temb, attention_mask, rope)

        # Per token, so it runs on each GPU's share; proj_out's output is the whole sequence again.
        video = self.proj_out(self.norm_out(tokens, temb))[:, ref_len:]
        video = video.reshape(batch, grid_t, grid_h, grid_w, -1, p_t, p, p)
        video = video.permute(0, 4, 1, 5, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(2, 3)
        return AvatarTransformerOutput(sample=video, block_cache=cache)


class SequencePoint(nn.Module):
    """Returns its inputs. It marks where the token sequence and the text rows start
    (`token_sequence`, `text_sequence`) and where the step cache leaves the sequence
    (`cache_gather`), so that diffusers' context parallelism (the model's `_cp_plan`) can split
    them across GPUs and gather the cache whole; on one GPU it does nothing. diffusers' own
    models split at their RoPE module; ours has several per-token inputs (RoPE, frame index, face
    mask) made in `forward`, hence this point."""

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tensors


# Full-size HunyuanVideo-Avatar (13B): the defaults above. A few-kilobyte config for CPU tests:
TINY_CONFIG = dict(
    in_channels=4,
    out_channels=4,
    num_attention_heads=2,
    attention_head_dim=8,
    num_layers=2,
    num_single_layers=2,
    num_refiner_layers=1,
    mlp_ratio=2.0,
    text_embed_dim=16,
    pooled_projection_dim=8,
    rope_axes_dim=(2, 2, 4),
    audio_window=10,
    audio_states=3,
    audio_channels=8,
    audio_intermediate_dim=16,
    audio_tokens_per_frame=4,
    audio_adapter_dim=8,
    motion_buckets=4,
)
