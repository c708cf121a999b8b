"""The strict converter on synthetic checkpoints in the official key naming.

`official_state_dict` below is written from the official module structure (hymm_sp/modules:
HYVideoDiffusionTransformer with its DoubleStreamBlock, SingleStreamBlock, SingleTokenRefiner,
AudioProjNet2, PerceiverAttentionCA, TimestepEmbedder, MLPEmbedder, FinalLayer), not from our
mapping, at tiny sizes: every official key name, with the shape the official module would give it.
"""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")

from avatarbot.avatar.hunyuan import convert, weights
from avatarbot.avatar.hunyuan.model import TINY_CONFIG, HunyuanAvatarTransformer3DModel, adapter_layers

pytestmark = pytest.mark.gpu

CONFIG = dict(TINY_CONFIG, num_refiner_layers=2)  # upstream's refiner is always 2 blocks deep
HIDDEN = CONFIG["num_attention_heads"] * CONFIG["attention_head_dim"]


def official_shapes(c=CONFIG) -> dict[str, tuple[int, ...]]:
    h = c["num_attention_heads"] * c["attention_head_dim"]
    head = c["attention_head_dim"]
    mlp = int(h * c["mlp_ratio"])
    refiner_mlp = 4 * h
    ch = c["in_channels"]
    shapes: dict[str, tuple[int, ...]] = {}

    def linear(name, out_f, in_f, bias=True):
        shapes[f"{name}.weight"] = (out_f, in_f)
        if bias:
            shapes[f"{name}.bias"] = (out_f,)

    def layer_norm(name, dim):
        shapes[f"{name}.weight"] = (dim,)
        shapes[f"{name}.bias"] = (dim,)

    def timestep_embedder(name, dim):  # TimestepEmbedder: mlp = Linear(256, dim), SiLU, Linear(dim, dim)
        linear(f"{name}.mlp.0", dim, 256)
        linear(f"{name}.mlp.2", dim, dim)

    for patch in ("img_in", "ref_in"):
        shapes[f"{patch}.proj.weight"] = (h, ch, 1, 2, 2)
        shapes[f"{patch}.proj.bias"] = (h,)
    # txt_in: SingleTokenRefiner
    linear("txt_in.input_embedder", h, c["text_embed_dim"])
    timestep_embedder("txt_in.t_embedder", h)
    linear("txt_in.c_embedder.linear_1", h, c["text_embed_dim"])
    linear("txt_in.c_embedder.linear_2", h, h)
    for i in range(c["num_refiner_layers"]):
        b = f"txt_in.individual_token_refiner.blocks.{i}"
        layer_norm(f"{b}.norm1", h)
        linear(f"{b}.self_attn_qkv", 3 * h, h)
        linear(f"{b}.self_attn_proj", h, h)
        layer_norm(f"{b}.norm2", h)
        linear(f"{b}.mlp.fc1", refiner_mlp, h)
        linear(f"{b}.mlp.fc2", h, refiner_mlp)
        linear(f"{b}.adaLN_modulation.1", 2 * h, h)
    timestep_embedder("time_in", h)
    linear("vector_in.in_layer", h, c["pooled_projection_dim"])
    linear("vector_in.out_layer", h, h)
    for i in range(c["num_layers"]):
        b = f"double_blocks.{i}"
        for stream in ("img", "txt"):
            linear(f"{b}.{stream}_mod.linear", 6 * h, h)
            linear(f"{b}.{stream}_attn_qkv", 3 * h, h)
            shapes[f"{b}.{stream}_attn_q_norm.weight"] = (head,)
            shapes[f"{b}.{stream}_attn_k_norm.weight"] = (head,)
            linear(f"{b}.{stream}_attn_proj", h, h)
            linear(f"{b}.{stream}_mlp.fc1", mlp, h)
            linear(f"{b}.{stream}_mlp.fc2", h, mlp)
    for i in range(c["num_single_layers"]):
        b = f"single_blocks.{i}"
        linear(f"{b}.linear1", 3 * h + mlp, h)
        linear(f"{b}.linear2", h, h + mlp)
        shapes[f"{b}.q_norm.weight"] = (head,)
        shapes[f"{b}.k_norm.weight"] = (head,)
        linear(f"{b}.modulation.linear", 3 * h, h)
    linear("final_layer.linear", 4 * c["out_channels"], h)
    linear("final_layer.adaLN_modulation.1", 2 * h, h)
    # audio_proj: AudioProjNet2
    audio_in = c["audio_window"] * c["audio_states"] * c["audio_channels"]
    linear("audio_proj.proj1", c["audio_intermediate_dim"], audio_in)
    linear("audio_proj.proj2", c["audio_intermediate_dim"], c["audio_intermediate_dim"])
    linear("audio_proj.proj3", c["audio_tokens_per_frame"] * h, c["audio_intermediate_dim"])
    layer_norm("audio_proj.norm", h)
    timestep_embedder("motion_exp", h // 4)
    timestep_embedder("motion_pose", h // 4)
    timestep_embedder("fps_proj", h)
    linear("before_proj", h, h)
    inner = c["audio_adapter_dim"]
    for j in range(10):  # upstream builds ten (after double blocks 1, 3, ..., 19) whatever the depth
        b = f"audio_adapter_blocks.{j}"
        layer_norm(f"{b}.norm1", h)
        layer_norm(f"{b}.norm2", h)
        linear(f"{b}.to_q", inner, h, bias=False)
        linear(f"{b}.to_kv", 2 * inner, h, bias=False)
        linear(f"{b}.to_out", h, inner, bias=False)
    return shapes


def official_state_dict(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) for k, s in official_shapes().items()}


def _convert(state, scales=None):
    layers = adapter_layers(CONFIG["num_layers"])
    return convert.convert_transformer_state_dict(state, convert.model_shapes(CONFIG), HIDDEN, scales, layers)


def test_every_official_key_maps_and_the_model_loads_strictly():
    official = official_state_dict()
    ours = _convert(official)
    model = HunyuanAvatarTransformer3DModel(**CONFIG)
    model.load_state_dict(ours, strict=True)  # raises on any missing / unexpected key
    # fused tensors are split in order
    qkv = official["double_blocks.1.img_attn_qkv.weight"]
    torch.testing.assert_close(ours["transformer_blocks.1.attn.to_k.weight"], qkv[HIDDEN : 2 * HIDDEN])
    txt_qkv = official["double_blocks.0.txt_attn_qkv.bias"]
    torch.testing.assert_close(ours["transformer_blocks.0.attn.add_v_proj.bias"], txt_qkv[2 * HIDDEN :])
    linear1 = official["single_blocks.1.linear1.weight"]
    torch.testing.assert_close(ours["single_transformer_blocks.1.proj_mlp.weight"], linear1[3 * HIDDEN :])
    torch.testing.assert_close(ours["single_transformer_blocks.1.attn.to_q.weight"], linear1[:HIDDEN])
    # final modulation: official (shift, scale) -> diffusers (scale, shift)
    final = official["final_layer.adaLN_modulation.1.weight"]
    torch.testing.assert_close(ours["norm_out.linear.weight"][:HIDDEN], final[HIDDEN:])
    # the audio adapter's first norm normalises the audio, the second the video tokens
    torch.testing.assert_close(
        ours["audio_adapters.0.norm_audio.weight"], official["audio_adapter_blocks.0.norm1.weight"]
    )
    torch.testing.assert_close(ours["ref_proj.weight"], official["before_proj.weight"])
    torch.testing.assert_close(ours["fps_embedder.linear_2.bias"], official["fps_proj.mlp.2.bias"])


def test_a_reduced_depth_checkpoint_drops_the_adapters_it_never_calls_and_loads_strictly(caplog):
    """Upstream builds ten audio adapters; a 2-block model calls only the one after block 1."""
    official = official_state_dict()
    assert sum(k.startswith("audio_adapter_blocks.") and k.endswith("to_q.weight") for k in official) == 10
    with caplog.at_level("INFO", logger="avatarbot.avatar.hunyuan.convert"):
        ours = _convert(official)
    assert "dropping the official audio adapters after double blocks 3, 5, 7, 9, 11, 13, 15, 17, 19" in caplog.text
    HunyuanAvatarTransformer3DModel(**CONFIG).load_state_dict(ours, strict=True)
    torch.testing.assert_close(ours["audio_adapters.0.to_kv.weight"], official["audio_adapter_blocks.0.to_kv.weight"])
    # a 6-block model with adapters after blocks 1 and 5 only takes upstream's adapters 0 and 2
    six = dict(CONFIG, num_layers=6, audio_adapter_layers=(1, 5))
    deeper = {}
    for key, tensor in official.items():
        if key.startswith("double_blocks."):
            _, block, rest = key.split(".", 2)
            for offset in (2, 4):  # blocks 2-5 copied from blocks 0-1
                deeper[f"double_blocks.{int(block) + offset}.{rest}"] = tensor
    picked = convert.convert_transformer_state_dict(
        {**official, **deeper}, convert.model_shapes(six), HIDDEN, None, (1, 5)
    )
    torch.testing.assert_close(picked["audio_adapters.1.to_q.weight"], official["audio_adapter_blocks.2.to_q.weight"])
    # without the selection, the strict check still refuses the nine extra adapters
    with pytest.raises(convert.ConversionError) as caught:
        convert.convert_transformer_state_dict(official, convert.model_shapes(CONFIG), HIDDEN)
    assert "left over (mapped to a name our model lacks): audio_adapters.1.norm_audio.bias" in str(caught.value)


def test_a_missing_key_is_reported_by_name():
    official = official_state_dict()
    del official["double_blocks.1.txt_mlp.fc2.bias"]
    with pytest.raises(convert.ConversionError) as caught:
        _convert(official)
    assert any("transformer_blocks.1.ff_context.net.2.bias" in p and "missing" in p for p in caught.value.problems)


def test_an_extra_key_is_reported_by_name():
    official = official_state_dict()
    official["guidance_in.mlp.0.weight"] = torch.zeros(HIDDEN, 256)
    official["double_blocks.0.img_attn_qkv.weight_scale"] = torch.ones(())
    with pytest.raises(convert.ConversionError) as caught:
        _convert(official)
    text = str(caught.value)
    assert "guidance_in.mlp.0.weight" in text
    assert "double_blocks.0.img_attn_qkv.weight_scale" in text


def test_a_misshaped_key_is_reported_with_both_shapes():
    official = official_state_dict()
    official["audio_proj.proj1.weight"] = torch.zeros(16, 999)
    official["double_blocks.0.img_attn_qkv.weight"] = torch.zeros(3 * HIDDEN + 1, HIDDEN)
    with pytest.raises(convert.ConversionError) as caught:
        _convert(official)
    text = str(caught.value)
    assert "audio_proj.proj1.weight: checkpoint (16, 999), model (16, 240)" in text
    assert "double_blocks.0.img_attn_qkv.weight" in text and "cannot split" in text


def _fp8_official():
    official = official_state_dict()
    scales = {}
    for key in list(official):
        layer = key.removesuffix(".weight")
        if key.endswith(".weight") and key.startswith(("double_blocks.", "single_blocks.")) and official[key].ndim == 2:
            scales[layer] = torch.tensor(0.01)
            official[key] = (official[key] / 0.01).to(torch.float8_e4m3fn)
    return official, scales


def test_fp8_checkpoint_keeps_fp8_weights_with_their_scales_and_loads():
    from avatarbot.avatar.hunyuan import fp8

    official, scales = _fp8_official()
    ours = _convert(official, scales)
    assert ours["transformer_blocks.0.attn.to_v.weight"].dtype == torch.float8_e4m3fn
    assert float(ours["transformer_blocks.0.attn.to_v.weight_scale"]) == pytest.approx(0.01)
    assert ours["single_transformer_blocks.0.proj_mlp.weight_scale"].shape == ()
    model = HunyuanAvatarTransformer3DModel(**CONFIG)
    fp8.swap_block_linears(model, only=fp8.layers_with_scales(ours))
    model.load_state_dict(ours, strict=True)
    layer = model.transformer_blocks[0].attn.to_v
    x = torch.randn(3, HIDDEN)
    expected = x @ (official["double_blocks.0.img_attn_qkv.weight"][2 * HIDDEN :].float() * 0.01).T + layer.bias
    torch.testing.assert_close(layer(x), expected)


def test_fp8_weight_without_scale_and_scale_without_weight_are_errors():
    official, scales = _fp8_official()
    del scales["single_blocks.1.linear2"]
    scales["double_blocks.9.img_mlp.fc1"] = torch.tensor(1.0)
    with pytest.raises(convert.ConversionError) as caught:
        _convert(official, scales)
    text = str(caught.value)
    assert "fp8 weight without a scale in the map: single_blocks.1.linear2" in text
    assert "scale in the fp8 map with no fp8 weight: double_blocks.9.img_mlp.fc1" in text


# --- the VAE ------------------------------------------------------------------------------------
# A tiny official VAE config.json, with the fields the HunyuanVideo release's file carries.
TINY_OFFICIAL_VAE_CONFIG = {
    "_class_name": "AutoencoderKLCausal3D",
    "_diffusers_version": "0.4.2",
    "act_fn": "silu",
    "block_out_channels": [8, 8, 8, 8],
    "down_block_types": ["DownEncoderBlockCausal3D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "out_channels": 3,
    "sample_size": 256,
    "sample_tsize": 64,
    "up_block_types": ["UpDecoderBlockCausal3D"] * 4,
    "scaling_factor": 0.476986,
    "time_compression_ratio": 4,
    "mid_block_add_attention": True,
}


def official_vae_shapes(c=TINY_OFFICIAL_VAE_CONFIG) -> dict[str, tuple[int, ...]]:
    """The state dict layout of upstream's AutoencoderKLCausal3D, restated from its module structure
    (hymm_sp/vae: EncoderCausal3D / DecoderCausal3D, DownEncoderBlockCausal3D with `op` downsamplers,
    UpDecoderBlockCausal3D with layers + 1 resnets, ResnetBlockCausal3D, UNetMidBlockCausal3D with one
    diffusers Attention, every CausalConv3d wrapping its nn.Conv3d as `.conv`). With a 4x time and
    8x space compression, blocks 0-2 resample in space and blocks 1-2 in time."""
    shapes: dict[str, tuple[int, ...]] = {}
    channels, latent, blocks = c["block_out_channels"], c["latent_channels"], len(c["block_out_channels"])

    def conv(name, out_ch, in_ch, k):
        shapes[f"{name}.conv.weight"] = (out_ch, in_ch, k, k, k)
        shapes[f"{name}.conv.bias"] = (out_ch,)

    def norm(name, ch):
        shapes[f"{name}.weight"] = shapes[f"{name}.bias"] = (ch,)

    def resnet(name, in_ch, out_ch):
        norm(f"{name}.norm1", in_ch)
        conv(f"{name}.conv1", out_ch, in_ch, 3)
        norm(f"{name}.norm2", out_ch)
        conv(f"{name}.conv2", out_ch, out_ch, 3)
        if in_ch != out_ch:
            conv(f"{name}.conv_shortcut", out_ch, in_ch, 1)

    def mid_block(name, ch):
        resnet(f"{name}.resnets.0", ch, ch)
        norm(f"{name}.attentions.0.group_norm", ch)
        for proj in ("to_q", "to_k", "to_v", "to_out.0"):
            shapes[f"{name}.attentions.0.{proj}.weight"] = (ch, ch)
            shapes[f"{name}.attentions.0.{proj}.bias"] = (ch,)
        resnet(f"{name}.resnets.1", ch, ch)

    def resamples(i):
        return i < 3 or (i >= blocks - 3 and i != blocks - 1)  # log2(8) space layers, log2(4) time layers

    conv("encoder.conv_in", channels[0], c["in_channels"], 3)
    out_ch = channels[0]
    for i in range(blocks):
        in_ch, out_ch = out_ch, channels[i]
        for j in range(c["layers_per_block"]):
            resnet(f"encoder.down_blocks.{i}.resnets.{j}", in_ch if j == 0 else out_ch, out_ch)
        if resamples(i):
            conv(f"encoder.down_blocks.{i}.downsamplers.0.conv", out_ch, out_ch, 3)
    mid_block("encoder.mid_block", channels[-1])
    norm("encoder.conv_norm_out", channels[-1])
    conv("encoder.conv_out", 2 * latent, channels[-1], 3)

    conv("decoder.conv_in", channels[-1], latent, 3)
    mid_block("decoder.mid_block", channels[-1])
    reversed_channels = list(reversed(channels))
    out_ch = reversed_channels[0]
    for i in range(blocks):
        in_ch, out_ch = out_ch, reversed_channels[i]
        for j in range(c["layers_per_block"] + 1):
            resnet(f"decoder.up_blocks.{i}.resnets.{j}", in_ch if j == 0 else out_ch, out_ch)
        if resamples(i):
            conv(f"decoder.up_blocks.{i}.upsamplers.0.conv", out_ch, out_ch, 3)
    norm("decoder.conv_norm_out", channels[0])
    conv("decoder.conv_out", c["out_channels"], channels[0], 3)
    shapes["quant_conv.weight"], shapes["quant_conv.bias"] = (2 * latent, 2 * latent, 1, 1, 1), (2 * latent,)
    shapes["post_quant_conv.weight"], shapes["post_quant_conv.bias"] = (latent, latent, 1, 1, 1), (latent,)
    return shapes


def official_vae_checkpoint(seed=1) -> dict:
    """What upstream's vae/pytorch_model.pt holds: {"state_dict": {"vae.<key>": tensor}}."""
    g = torch.Generator().manual_seed(seed)
    state = {f"vae.{k}": 0.1 * torch.randn(s, generator=g) for k, s in official_vae_shapes().items()}
    for key in state:
        if ".norm" in key or "group_norm" in key or "conv_norm_out" in key:
            state[key] = 1 + state[key] if key.endswith("weight") else state[key]
    return {"state_dict": state}


def _write_official_vae(vae_dir, config=TINY_OFFICIAL_VAE_CONFIG, checkpoint=None):
    vae_dir.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint or official_vae_checkpoint(), vae_dir / "pytorch_model.pt")
    (vae_dir / "config.json").write_text(json.dumps(config))


def test_vae_conversion_reads_the_official_config_and_maps_every_key(tmp_path):
    """The official side is upstream's key layout (restated above), not diffusers' class: a naming
    difference would leave a key unmapped. The converted config carries the official groups and
    scaling factor, the runtime file upstream's tiles and non-causal mid-block attention."""
    from avatarbot.avatar.hunyuan.vae import FullMidBlockAttnProcessor, VaeRuntime, load_vae

    checkpoint = official_vae_checkpoint()
    config, runtime = convert.vae_config_from_official(TINY_OFFICIAL_VAE_CONFIG)
    converted = convert.convert_vae_state_dict(checkpoint, convert.vae_shapes(config))
    assert len(converted) == len(checkpoint["state_dict"]) == len(official_vae_shapes())
    assert config["norm_num_groups"] == 4 and config["scaling_factor"] == 0.476986
    assert config["down_block_types"] == ["HunyuanVideoDownBlock3D"] * 4
    assert runtime == VaeRuntime(mid_block_causal_attn=False, tile_sample_size=256, tile_sample_frames=64)
    assert (runtime.tile_sample_stride, runtime.tile_sample_stride_frames) == (192, 48)

    convert.save_sharded(converted, tmp_path, "diffusion_pytorch_model", config)
    runtime.save(tmp_path)
    vae, loaded_runtime = load_vae(tmp_path, torch.float32)
    assert loaded_runtime == runtime
    assert vae.config.norm_num_groups == 4 and vae.encoder.down_blocks[0].resnets[0].norm1.num_groups == 4
    torch.testing.assert_close(
        vae.decoder.up_blocks[1].upsamplers[0].conv.conv.weight,
        checkpoint["state_dict"]["vae.decoder.up_blocks.1.upsamplers.0.conv.conv.weight"],
    )
    assert all(isinstance(a.processor, FullMidBlockAttnProcessor) for a in (vae.encoder.mid_block.attentions[0],))
    assert (vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames) == (64, 48)
    assert (vae.tile_sample_min_height, vae.tile_sample_stride_width) == (256, 192)


def test_vae_config_fields_it_lacks_take_upstreams_class_defaults():
    sparse = {k: v for k, v in TINY_OFFICIAL_VAE_CONFIG.items() if k not in ("scaling_factor", "sample_size")}
    config, runtime = convert.vae_config_from_official(sparse)
    assert config["scaling_factor"] == 0.18215  # AutoencoderKLCausal3D's default, what upstream would use
    assert runtime.tile_sample_size == 32
    causal = dict(TINY_OFFICIAL_VAE_CONFIG, mid_block_causal_attn=True)
    assert convert.vae_config_from_official(causal)[1].mid_block_causal_attn


@pytest.mark.parametrize(
    ("change", "reported"),
    [
        ({"shift_factor": 0.1}, "shift_factor: not a field"),
        ({"disable_causal_conv": True}, "disable_causal_conv true"),
        ({"time_compression_ratio": 8}, "time_compression_ratio 8"),
        ({"down_block_types": ["DownEncoderBlock2D"] * 4}, "down_block_types"),
        ({"up_block_types": ["UpDecoderBlockCausal3D"] * 3}, "up_block_types"),
        ({"sample_size": 200}, "spatial encode blend is 6, diffusers' would be 7"),
        ({"_class_name": "AutoencoderKL"}, "_class_name"),
    ],
)
def test_vae_config_that_cannot_be_honoured_is_refused(change, reported):
    with pytest.raises(convert.ConversionError) as caught:
        convert.vae_config_from_official(dict(TINY_OFFICIAL_VAE_CONFIG, **change))
    assert reported in str(caught.value)


def test_vae_weights_that_do_not_fit_their_config_are_refused(tmp_path):
    """A config.json that does not describe the weights next to it stops the conversion."""
    src = _official_dir(tmp_path / "official")
    wider = dict(TINY_OFFICIAL_VAE_CONFIG, block_out_channels=[8, 8, 8, 16])
    (src / convert.OFFICIAL_VAE_DIR / "config.json").write_text(json.dumps(wider))
    with pytest.raises(convert.ConversionError) as caught:
        convert.convert_checkpoint_dir(src, tmp_path / "converted", fp8=False, config=CONFIG)
    assert "VAE checkpoint does not match the model" in str(caught.value)
    assert "wrong shape: decoder.mid_block.resnets.0.norm2.weight: checkpoint (8,), model (16,)" in str(caught.value)


# --- whole directories -----------------------------------------------------------------------------
def _official_dir(root, fp8=False):
    ckpts = root / "ckpts"
    transformers_dir = ckpts / convert.OFFICIAL_TRANSFORMER_DIR
    transformers_dir.mkdir(parents=True)
    if fp8:
        state, scales = _fp8_official()
        torch.save({"module": state}, transformers_dir / convert.OFFICIAL_FP8_FILE)
        torch.save({"module": scales}, transformers_dir / convert.OFFICIAL_FP8_MAP_FILE)
    else:
        torch.save({"module": official_state_dict()}, transformers_dir / convert.OFFICIAL_BF16_FILE)
    _write_official_vae(ckpts / convert.OFFICIAL_VAE_DIR)
    # Hugging Face component folders are copied as they are; files with the right names suffice here.
    for name, files in {
        "llava_llama_image": ["config.json", "tokenizer.json", "model-00001-of-00004.safetensors"],
        "text_encoder_2": ["config.json", "vocab.json", "model.safetensors"],
        "whisper-tiny": ["config.json", "preprocessor_config.json", "model.safetensors"],
    }.items():
        (ckpts / name).mkdir()
        for file in files:
            (ckpts / name / file).write_text("{}")
    return ckpts


@pytest.mark.parametrize("fp8", [False, True])
def test_directory_conversion_then_strict_load(tmp_path, fp8):
    src = _official_dir(tmp_path / "official", fp8=fp8)
    dst = tmp_path / "converted"
    assert weights.check_weights(src)[0].startswith(f"{src} holds the official download")
    convert.convert_checkpoint_dir(src, dst, fp8=fp8, config=CONFIG)
    assert weights.check_weights(dst) == []
    assert json.loads((dst / "transformer" / "config.json").read_text())["num_refiner_layers"] == 2
    model = weights.load_transformer(dst / "transformer", dtype="bf16")
    kinds = {type(m).__name__ for m in model.modules()}
    assert ("Fp8Linear" in kinds) == fp8
    assert model.x_embedder.proj.weight.dtype == torch.bfloat16


def test_bf16_weights_can_be_quantised_to_fp8_at_load(tmp_path):
    src = _official_dir(tmp_path / "official")
    dst = tmp_path / "converted"
    convert.convert_checkpoint_dir(src, dst, fp8=False, config=CONFIG)
    model = weights.load_transformer(dst / "transformer", dtype="fp8")
    assert model.single_transformer_blocks[0].proj_out.weight.dtype == torch.float8_e4m3fn


def test_run_convert_reports_missing_files_and_fails(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert convert.run_convert(tmp_path / "empty", tmp_path / "out", fp8=True) == 2
    err = capsys.readouterr().err
    assert "mp_rank_00_model_states_fp8.pt" in err and "mp_rank_00_model_states_fp8_map.pt" in err
    assert "whisper-tiny" in err


def test_check_weights_lists_what_is_missing(tmp_path):
    assert weights.check_weights(None)[0].startswith("no HunyuanVideo-Avatar weights directory")
    assert weights.check_weights(tmp_path / "nope") == [f"weights directory {tmp_path / 'nope'} does not exist"]
    problems = weights.check_weights(tmp_path)
    assert any("transformer" in p for p in problems)
    assert any("whisper" in p for p in problems)
    assert any("LLaVA" in p for p in problems)


# --- numerical equivalence with the official computation ------------------------------------------
class _OfficialOps:
    """Plain torch ops on the official tensor names, shared by the official forward and refiner."""

    def __init__(self, W, c, batch):
        self.W, self.c, self.b = W, c, batch
        self.h, self.heads = HIDDEN, c["num_attention_heads"]

    def lin(self, name, v):
        return torch.nn.functional.linear(v, self.W[f"{name}.weight"], self.W.get(f"{name}.bias"))

    def affine_ln(self, v, name, eps):
        return torch.nn.functional.layer_norm(v, (self.h,), self.W[f"{name}.weight"], self.W[f"{name}.bias"], eps=eps)

    def sinusoid_embed(self, name, values):
        freqs = torch.exp(-np.log(10000) * torch.arange(128, dtype=torch.float32) / 128)
        args = values.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.lin(f"{name}.mlp.2", torch.nn.functional.silu(self.lin(f"{name}.mlp.0", emb)))

    def heads_of(self, v):
        return v.reshape(self.b, v.shape[1], self.heads, self.h // self.heads)

    def attention(self, q, k, v, allowed=None):
        out = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=allowed
        )
        return out.transpose(1, 2).reshape(self.b, -1, self.h)


def official_refiner(W, c, txt, t, text_mask=None):
    """Upstream's SingleTokenRefiner (hymm_sp/modules/token_refiner.py) with its mask rules: the
    context vector is the mean over rows marked valid; in attention a row marked valid sees the
    valid rows, a row marked invalid sees only row 0 (column 0 is always allowed)."""
    ops = _OfficialOps(W, c, txt.shape[0])
    F = torch.nn.functional
    allowed = None
    if text_mask is None:
        context = txt.mean(1)
    else:
        weights = text_mask.float()[..., None]
        context = (txt * weights).sum(1) / weights.sum(1)
        valid = text_mask.bool()
        allowed = valid[:, None, :, None] & valid[:, None, None, :]
        allowed[..., 0] = True
    cond = ops.sinusoid_embed("txt_in.t_embedder", t) + ops.lin(
        "txt_in.c_embedder.linear_2", F.silu(ops.lin("txt_in.c_embedder.linear_1", context))
    )
    tx = ops.lin("txt_in.input_embedder", txt)
    for i in range(c["num_refiner_layers"]):
        blk = f"txt_in.individual_token_refiner.blocks.{i}"
        gate_msa, gate_mlp = ops.lin(f"{blk}.adaLN_modulation.1", F.silu(cond)).chunk(2, dim=-1)
        normed = ops.affine_ln(tx, f"{blk}.norm1", 1e-6)
        q, k, v = (ops.heads_of(p) for p in ops.lin(f"{blk}.self_attn_qkv", normed).chunk(3, dim=-1))
        tx = tx + gate_msa[:, None] * ops.lin(f"{blk}.self_attn_proj", ops.attention(q, k, v, allowed))
        normed = ops.affine_ln(tx, f"{blk}.norm2", 1e-6)
        tx = tx + gate_mlp[:, None] * ops.lin(f"{blk}.mlp.fc2", F.silu(ops.lin(f"{blk}.mlp.fc1", normed)))
    return tx


def _official_forward(W, c, x, t, ref, txt, pooled, audio, mask, m_exp, m_pose, fps, text_mask=None):
    """The official HYVideoDiffusionTransformer forward (audio variant), written out with plain
    torch ops on the official tensor names: the yardstick our converted model must match. With a
    text mask, the double and single blocks join the video with the first text_mask.sum() refined
    rows (upstream's packed-sequence attention, hymm_sp/modules/parallel_states.get_cu_seqlens);
    the other rows never reach the video."""
    F = torch.nn.functional
    ops = _OfficialOps(W, c, x.shape[0])
    h, b = HIDDEN, x.shape[0]
    lin, affine_ln, sinusoid_embed, heads_of, attention = (
        ops.lin, ops.affine_ln, ops.sinusoid_embed, ops.heads_of, ops.attention
    )  # fmt: skip

    def rms(v, name):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-6) * W[f"{name}.weight"]

    def modulate(v, shift, scale):
        return v * (1 + scale[:, None]) + shift[:, None]

    frames, gh, gw = x.shape[2], x.shape[3] // 2, x.shape[4] // 2
    # RoPE over (time -1 .. frames-1, row, column), interleaved real pairs
    grid = torch.stack(torch.meshgrid(torch.arange(-1, frames), torch.arange(gh), torch.arange(gw), indexing="ij"))
    cos, sin = [], []
    for axis, dim in enumerate(c["rope_axes_dim"]):
        freqs = 1.0 / (c.get("rope_theta", 256.0) ** (torch.arange(0, dim, 2).float() / dim))
        angles = grid[axis].reshape(-1).float()[:, None] * freqs[None]
        cos.append(angles.cos().repeat_interleave(2, dim=1))
        sin.append(angles.sin().repeat_interleave(2, dim=1))
    cos, sin = torch.cat(cos, 1)[None, :, None], torch.cat(sin, 1)[None, :, None]

    def rope(v):
        real, imag = v.reshape(*v.shape[:-1], -1, 2).unbind(-1)
        rotated = torch.stack([-imag, real], dim=-1).flatten(3)
        return v * cos + rotated * sin

    vec = sinusoid_embed("time_in", t)
    vec = vec + sinusoid_embed("motion_exp", m_exp.reshape(-1)).reshape(b, -1)
    vec = vec + sinusoid_embed("motion_pose", m_pose.reshape(-1)).reshape(b, -1)
    vec = vec + sinusoid_embed("fps_proj", fps)
    a = audio.reshape(b * audio.shape[1], -1)
    a = lin("audio_proj.proj3", torch.relu(lin("audio_proj.proj2", torch.relu(lin("audio_proj.proj1", a)))))
    a = affine_ln(a.reshape(b, audio.shape[1], -1, h), "audio_proj.norm", 1e-5)
    vec = vec + lin("vector_in.out_layer", F.silu(lin("vector_in.in_layer", pooled)))

    def patch(name, v):
        return (
            F.conv3d(v, W[f"{name}.proj.weight"], W[f"{name}.proj.bias"], stride=(1, 2, 2)).flatten(2).transpose(1, 2)
        )

    img = lin("before_proj", patch("ref_in", ref)) + patch("img_in", x)
    first = patch("img_in", ref[:, :, :1])
    ref_len = first.shape[1]
    img = torch.cat([first, img], dim=1)

    tx = official_refiner(W, c, txt, t, text_mask)
    if text_mask is not None:
        tx = tx[:, : int(text_mask.sum())]

    def plain_ln(v):
        return F.layer_norm(v, (h,), eps=1e-6)

    def gelu(v):
        return F.gelu(v, approximate="tanh")

    adapters = {layer: j for j, layer in enumerate(range(1, c["num_layers"], 2))}
    for i in range(c["num_layers"]):
        blk = f"double_blocks.{i}"
        im = lin(f"{blk}.img_mod.linear", F.silu(vec)).chunk(6, dim=-1)
        tm = lin(f"{blk}.txt_mod.linear", F.silu(vec)).chunk(6, dim=-1)
        q, k, v = (
            heads_of(p) for p in lin(f"{blk}.img_attn_qkv", modulate(plain_ln(img), im[0], im[1])).chunk(3, dim=-1)
        )
        q, k = rope(rms(q, f"{blk}.img_attn_q_norm")), rope(rms(k, f"{blk}.img_attn_k_norm"))
        tq, tk, tv = (
            heads_of(p) for p in lin(f"{blk}.txt_attn_qkv", modulate(plain_ln(tx), tm[0], tm[1])).chunk(3, dim=-1)
        )
        tq, tk = rms(tq, f"{blk}.txt_attn_q_norm"), rms(tk, f"{blk}.txt_attn_k_norm")
        out = attention(torch.cat([q, tq], 1), torch.cat([k, tk], 1), torch.cat([v, tv], 1))
        img_out, txt_out = out[:, : img.shape[1]], out[:, img.shape[1] :]
        img = img + im[2][:, None] * lin(f"{blk}.img_attn_proj", img_out)
        img = img + im[5][:, None] * lin(
            f"{blk}.img_mlp.fc2", gelu(lin(f"{blk}.img_mlp.fc1", modulate(plain_ln(img), im[3], im[4])))
        )
        tx = tx + tm[2][:, None] * lin(f"{blk}.txt_attn_proj", txt_out)
        tx = tx + tm[5][:, None] * lin(
            f"{blk}.txt_mlp.fc2", gelu(lin(f"{blk}.txt_mlp.fc1", modulate(plain_ln(tx), tm[3], tm[4])))
        )
        if i in adapters:
            ad = f"audio_adapter_blocks.{adapters[i]}"
            video = img[:, ref_len:].reshape(b, frames, gh * gw, h)
            tokens = torch.cat([a[:, :1].repeat(1, 3, 1, 1), a], dim=1).reshape(b, frames, 16, h)
            xa = affine_ln(tokens, f"{ad}.norm1", 1e-5)
            lat = affine_ln(video, f"{ad}.norm2", 1e-5)
            q = lin(f"{ad}.to_q", lat)
            k, v = lin(f"{ad}.to_kv", xa).chunk(2, dim=-1)
            s = q.shape[-1] ** -0.25
            weight = torch.softmax((q * s) @ (k * s).transpose(-2, -1), dim=-1)
            heard = lin(f"{ad}.to_out", weight @ v).reshape(b, -1, h)
            m = F.interpolate(mask, size=(frames, gh, gw), mode="nearest").reshape(b, -1, 1)
            img = img + torch.cat([torch.zeros_like(img[:, :ref_len]), heard * m], dim=1)

    xs = torch.cat([img, tx], dim=1)
    n_img = img.shape[1]
    mlp = int(h * c["mlp_ratio"])
    for i in range(c["num_single_layers"]):
        blk = f"single_blocks.{i}"
        shift, scale, gate = lin(f"{blk}.modulation.linear", F.silu(vec)).chunk(3, dim=-1)
        qkv, hidden_mlp = lin(f"{blk}.linear1", modulate(plain_ln(xs), shift, scale)).split([3 * h, mlp], dim=-1)
        q, k, v = (heads_of(p) for p in qkv.chunk(3, dim=-1))
        q, k = rms(q, f"{blk}.q_norm"), rms(k, f"{blk}.k_norm")
        q = torch.cat([rope(q[:, :n_img]), q[:, n_img:]], 1)
        k = torch.cat([rope(k[:, :n_img]), k[:, n_img:]], 1)
        xs = xs + gate[:, None] * lin(f"{blk}.linear2", torch.cat([attention(q, k, v), gelu(hidden_mlp)], dim=-1))

    img = xs[:, ref_len:n_img]
    shift, scale = lin("final_layer.adaLN_modulation.1", F.silu(vec)).chunk(2, dim=-1)
    img = lin("final_layer.linear", modulate(plain_ln(img), shift, scale))
    cout = c["out_channels"]
    img = img.reshape(b, frames, gh, gw, cout, 1, 2, 2)
    return torch.einsum("nthwcopq->nctohpwq", img).reshape(b, cout, frames, gh * 2, gw * 2)


def test_converted_model_computes_what_the_official_model_computes():
    official = official_state_dict(seed=5)
    for key, tensor in official.items():  # keep activations tame: small weights, unit norms
        if key.endswith(("norm.weight", "norm1.weight", "norm2.weight")):
            official[key] = 1 + 0.1 * tensor
        else:
            official[key] = 0.2 * tensor
    model = HunyuanAvatarTransformer3DModel(**CONFIG).eval()
    model.load_state_dict(_convert(official), strict=True)
    g = torch.Generator().manual_seed(7)
    frames, height, width = 3, 4, 6
    mask = torch.zeros(1, 1, 1, height, width)
    mask[..., 1:3, 2:5] = 1.0
    inputs = dict(
        x=torch.randn(1, 4, frames, height, width, generator=g),
        t=torch.tensor([620.0]),
        ref=torch.randn(1, 4, frames, height, width, generator=g),
        txt=torch.randn(1, 5, CONFIG["text_embed_dim"], generator=g),
        pooled=torch.randn(1, CONFIG["pooled_projection_dim"], generator=g),
        audio=torch.randn(1, 4 * frames - 3, 10, CONFIG["audio_states"], CONFIG["audio_channels"], generator=g),
        mask=mask,
        m_exp=torch.full((1, 4), 30.0),
        m_pose=torch.full((1, 4), 25.0),
        fps=torch.tensor([25.0]),
    )
    with torch.no_grad():
        expected = _official_forward(official, CONFIG, **inputs)
        ours = model(
            inputs["x"], inputs["t"], inputs["ref"], inputs["txt"], inputs["pooled"], inputs["audio"], mask,
            inputs["m_exp"], inputs["m_pose"], inputs["fps"],
        ).sample  # fmt: skip
    assert expected.abs().mean() > 1e-3  # the comparison is not between two near-zero tensors
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_fp8_map_entries_stored_in_a_wider_dtype_are_kept_as_fp8():
    """If the fp8 file stored a mapped weight as bf16 (values already divided by the scale), the
    converter still produces an fp8 weight with that scale."""
    official, scales = _fp8_official()
    official["single_blocks.0.linear2.weight"] = official["single_blocks.0.linear2.weight"].to(torch.bfloat16)
    ours = _convert(official, scales)
    assert ours["single_transformer_blocks.0.proj_out.weight"].dtype == torch.float8_e4m3fn
    assert float(ours["single_transformer_blocks.0.proj_out.weight_scale"]) == pytest.approx(0.01)
