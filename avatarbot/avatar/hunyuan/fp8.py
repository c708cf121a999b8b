"""fp8 weight storage for the transformer blocks, with one scale per layer.

A 13B transformer is ~26 GB in bf16 and ~13 GB in fp8 (e4m3). Plain casting (diffusers' layerwise
casting) loses small weights to e4m3's narrow range, so, like the official fp8 checkpoint, each
linear layer in the double/single-stream blocks keeps `weight` in fp8 and `weight_scale` (fp32
scalar); the forward pass multiplies back to the activation dtype. Everything else stays bf16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCALE_SUFFIX = ".weight_scale"
FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0  # largest finite e4m3 value
BLOCK_PREFIXES = ("transformer_blocks.", "single_transformer_blocks.")


class Fp8Linear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=FP8_DTYPE), requires_grad=False)
        self.weight_scale = nn.Parameter(torch.ones((), dtype=torch.float32), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(out_features), requires_grad=False) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(x.dtype) * self.weight_scale.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, weight, bias)


def block_linear_names(model: nn.Module) -> set[str]:
    return {
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.startswith(BLOCK_PREFIXES)
    }


def layers_with_scales(state: dict) -> set[str]:
    return {key.removesuffix(SCALE_SUFFIX) for key in state if key.endswith(SCALE_SUFFIX)}


def swap_block_linears(model: nn.Module, only: set[str] | None = None) -> None:
    """Replace the blocks' nn.Linear layers (or just `only`) by Fp8Linear, in place."""
    names = block_linear_names(model) if only is None else only
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        old = getattr(parent, child)
        with torch.device(old.weight.device):
            setattr(parent, child, Fp8Linear(old.in_features, old.out_features, bias=old.bias is not None))


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 weight, scale) with the layer's largest magnitude mapped to e4m3's largest value."""
    scale = weight.detach().abs().max().float().clamp(min=1e-12) / FP8_MAX
    return (weight.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE), scale


def quantize_state_dict(state: dict, layer_names: set[str]) -> dict:
    out = dict(state)
    for name in layer_names:
        out[name + ".weight"], out[name + SCALE_SUFFIX] = quantize(state[name + ".weight"])
    return out


def quantize_model_(model: nn.Module) -> None:
    """Quantise an in-memory model's block linears in place (the benchmark's random weights)."""
    names = block_linear_names(model)
    weights = {name: model.get_submodule(name) for name in names}
    swap_block_linears(model, names)
    for name, old in weights.items():
        new = model.get_submodule(name)
        q, scale = quantize(old.weight)
        new.weight.data = q
        new.weight_scale.data = scale.to(new.weight.device)
        if old.bias is not None:
            new.bias.data = old.bias.data


def dequantize_block_(block: nn.Module) -> None:
    """Turn a block's Fp8Linear layers back into plain nn.Linear in the activation dtype (bf16),
    in place: the input torchao's fp8 compute quantises anew (`speed.enable_fp8_compute`)."""
    for name, module in list(block.named_modules()):
        if not isinstance(module, Fp8Linear):
            continue
        dtype = module.bias.dtype if module.bias is not None else torch.bfloat16
        with torch.device(module.weight.device):
            linear = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None, dtype=dtype)
        linear.weight.data = module.weight.to(dtype) * module.weight_scale.to(dtype)
        if module.bias is not None:
            linear.bias.data = module.bias.data
        parent_name, _, child = name.rpartition(".")
        setattr(block.get_submodule(parent_name), child, linear)
        linear.requires_grad_(False)
