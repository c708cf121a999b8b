"""The causal 3D VAE, run the way upstream runs it.

We use diffusers' AutoencoderKLHunyuanVideo (same modules and key names as upstream's
AutoencoderKLCausal3D) and set on it what its config cannot hold, from `VaeRuntime`:

- Tiles. Upstream (hymm_sp/vae/autoencoder_kl_causal_3d.py) tiles time in `sample_tsize` + 1 frames
  (64 + 1) with a stride of 3/4 of that (48), and space in `sample_size` pixels (256) with a stride
  of 3/4 (192), at encode and at decode (the sampler turns tiling on for both). diffusers' tiling
  follows the same blending rules; only its defaults differ (16 + 1 frames, stride 12, and time
  tiling always on), so we pass upstream's sizes to `enable_tiling`.
- Mid-block attention. Upstream masks it causally in time only when the config sets
  `mid_block_causal_attn` (default off: every latent frame sees every other); diffusers always
  masks it. `FullMidBlockAttnProcessor` is diffusers' own SDPA processor with the mask dropped:
  a processor is how diffusers lets a model change its attention.

The converter writes `VaeRuntime` next to the VAE as `RUNTIME_FILE`, built from the official
`vae/config.json` (see `convert.vae_config_from_official`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from avatarbot.avatar.hunyuan.weights import VAE_RUNTIME_FILE as RUNTIME_FILE

# Upstream's tile overlap: tiles advance by 3/4 of their size (`tile_overlap_factor = 0.25`).
TILE_OVERLAP = 0.25


@dataclass(frozen=True)
class VaeRuntime:
    """How the VAE runs; the defaults are the official HunyuanVideo VAE's."""

    mid_block_causal_attn: bool = False
    tile_sample_size: int = 256  # upstream `sample_size`: spatial tile in pixels
    tile_sample_frames: int = 64  # upstream `sample_tsize`: temporal tile in frames (+1)

    @property
    def tile_sample_stride(self) -> int:
        return int(self.tile_sample_size * (1 - TILE_OVERLAP))

    @property
    def tile_sample_stride_frames(self) -> int:
        return int(self.tile_sample_frames * (1 - TILE_OVERLAP))

    def tiling_kwargs(self) -> dict[str, int]:
        """Arguments of diffusers' `AutoencoderKLHunyuanVideo.enable_tiling`."""
        return dict(
            tile_sample_min_height=self.tile_sample_size,
            tile_sample_min_width=self.tile_sample_size,
            tile_sample_min_num_frames=self.tile_sample_frames,
            tile_sample_stride_height=self.tile_sample_stride,
            tile_sample_stride_width=self.tile_sample_stride,
            tile_sample_stride_num_frames=self.tile_sample_stride_frames,
        )

    def save(self, directory: Path) -> None:
        (Path(directory) / RUNTIME_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> VaeRuntime:
        return cls(**json.loads((Path(directory) / RUNTIME_FILE).read_text()))


class FullMidBlockAttnProcessor:
    """diffusers' SDPA attention processor without the causal mask diffusers' mid-block passes:
    upstream's mid-block attention when `mid_block_causal_attn` is off."""

    def __init__(self):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self._sdpa = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        return self._sdpa(attn, hidden_states, encoder_hidden_states, attention_mask=None, temb=temb)


def mid_block_attentions(vae) -> list:
    return [a for coder in (vae.encoder, vae.decoder) for a in coder.mid_block.attentions if a is not None]


def configure_vae(vae, runtime: VaeRuntime | None = None):
    """Set upstream's tiles and mid-block attention on a diffusers HunyuanVideo VAE, in place."""
    runtime = runtime or VaeRuntime()
    vae.enable_tiling(**runtime.tiling_kwargs())
    if not runtime.mid_block_causal_attn:
        for attention in mid_block_attentions(vae):
            attention.set_processor(FullMidBlockAttnProcessor())
    return vae


def load_vae(directory: Path, dtype):
    """The converted VAE, configured from its runtime file: (vae, runtime)."""
    from diffusers import AutoencoderKLHunyuanVideo

    runtime = VaeRuntime.load(directory)
    vae = AutoencoderKLHunyuanVideo.from_pretrained(directory, torch_dtype=dtype).eval()
    return configure_vae(vae, runtime), runtime
