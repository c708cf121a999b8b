"""Text conditioning exactly as upstream: the rows and mask the LLaVA encoder yields, the refiner's
row-wise use of the mask, and the rows the joint blocks join with the video.

The encoder is a tiny random LLaVA at the real geometry (336 px photo, 14 px patches: 576 image
features). The references are computed here from the rules, independently of our code:
upstream's tokenization (transformers' own truncation and max-length padding), the mask upstream's
pipeline builds, transformers 4.45.1's legacy image merge, upstream's token refiner and its packed
joint attention (in test_hunyuan_convert).
"""

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")

from test_hunyuan_convert import CONFIG, _convert, _official_forward, official_refiner, official_state_dict
from test_hunyuan_pipeline import _photo, _speech, tiny_pipeline, tiny_prompt_encoder

from avatarbot.avatar.hunyuan.conditioning import (
    IMAGE_SUFFIX,
    NEGATIVE_PROMPT,
    PROMPT_TEMPLATE,
    TEXT_MAX_TOKENS,
    llava_pixels,
)
from avatarbot.avatar.hunyuan.model import HunyuanAvatarTransformer3DModel

pytestmark = pytest.mark.gpu

IMAGE_FEATURES = 576
PROMPT_ROWS = [5, 35, 120, 200, 255]  # text rows before the photo's features (prompt + suffix)
SUFFIX_TOKENS = 5  # <|eot_id|> The person looks like


def prompt_of(rows: int) -> str:
    words = ["A", "person", "talking"]
    return " ".join(words[i % 3] for i in range(rows - SUFFIX_TOKENS))


def upstream_encoding(encoder, prompt, image):
    """Upstream's (states, mask) for one prompt, from the rules:
    hymm_sp/text_encoder `text2tokens` (template + suffix, truncation and max-length padding at
    crop_start + text_len), the pipeline's `attention_mask` + ones(575), transformers 4.45.1's
    `_merge_input_ids_with_image_features` for one image, hidden_states[-(2 + 1)], crop at
    crop_start for both."""
    llava, tokenizer, crop = encoder.llava, encoder.tokenizer, encoder.template_tokens
    batch = tokenizer(
        PROMPT_TEMPLATE.format(prompt) + IMAGE_SUFFIX,
        truncation=True,
        max_length=crop + TEXT_MAX_TOKENS,
        padding="max_length",
        return_tensors="pt",
    )
    input_ids, token_mask = batch["input_ids"], batch["attention_mask"]
    passed_mask = torch.cat([token_mask, torch.ones(1, IMAGE_FEATURES - 1, dtype=token_mask.dtype)], dim=1)
    features = llava.model.get_image_features(
        pixel_values=llava_pixels(image),
        vision_feature_layer=llava.config.vision_feature_layer,
        vision_feature_select_strategy=llava.config.vision_feature_select_strategy,
    ).pooler_output[0][None]
    embeds = llava.get_input_embeddings()(input_ids)
    # --- 4.45.1's legacy merge, step by step ---
    image_token, pad_token = llava.config.image_token_id, llava.config.pad_token_id
    patches, dim = features.shape[1], embeds.shape[-1]
    left_padding = not bool((input_ids[:, -1] == pad_token).sum())
    special = input_ids == image_token
    max_embed_dim = int(special.sum(-1).max()) * (patches - 1) + input_ids.shape[1]
    batch_idx, text_idx = torch.where(~special)
    new_positions = torch.cumsum(special * (patches - 1) + 1, -1) - 1
    image_pad = max_embed_dim - 1 - new_positions[:, -1]
    if left_padding:
        new_positions = new_positions + image_pad[:, None]
    text_to_overwrite = new_positions[batch_idx, text_idx]
    final = torch.zeros(1, max_embed_dim, dim)
    final_mask = torch.zeros(1, max_embed_dim, dtype=passed_mask.dtype)
    final[batch_idx, text_to_overwrite] = embeds[batch_idx, text_idx]
    final_mask[batch_idx, text_to_overwrite] = passed_mask[batch_idx, text_idx]
    image_to_overwrite = torch.ones(1, max_embed_dim, dtype=torch.bool)
    image_to_overwrite[batch_idx, text_to_overwrite] = False
    image_to_overwrite &= image_to_overwrite.cumsum(-1) - 1 >= image_pad[:, None]
    assert int(image_to_overwrite.sum()) == patches  # 4.45.1 raises otherwise
    final[image_to_overwrite] = features.reshape(-1, dim)
    final_mask |= image_to_overwrite
    position_ids = (final_mask.cumsum(-1) - 1).masked_fill(final_mask == 0, 1)
    pad_batch, pad_idx = torch.where(input_ids == pad_token)
    final[pad_batch, new_positions[pad_batch, pad_idx]] = 0
    hidden = llava.model.language_model(
        inputs_embeds=final, attention_mask=final_mask, position_ids=position_ids, output_hidden_states=True
    ).hidden_states[-3]
    return hidden[:, crop:], passed_mask[:, crop:]


@pytest.fixture(scope="module")
def encoder():
    encoder = tiny_prompt_encoder()
    with torch.no_grad():
        # make the pad embedding matter: 4.45.1 zeroes it in the merge (random init leaves it at zero)
        encoder.llava.get_input_embeddings().weight[1] = torch.randn(16, generator=torch.Generator().manual_seed(9))
        # sharpen attention (random init keeps it near uniform), so position ids and masks matter
        for layer in encoder.llava.model.language_model.layers:
            layer.self_attn.q_proj.weight.mul_(30)
            layer.self_attn.k_proj.weight.mul_(30)
    return encoder


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(3).integers(0, 255, size=(96, 80, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def transformer():
    official = official_state_dict(seed=11)
    for key, tensor in official.items():  # tame activations, as in test_hunyuan_convert
        official[key] = (
            1 + 0.1 * tensor if key.endswith(("norm.weight", "norm1.weight", "norm2.weight")) else 0.2 * tensor
        )
    model = HunyuanAvatarTransformer3DModel(**CONFIG).eval()
    model.load_state_dict(_convert(official), strict=True)
    return model, official


@pytest.mark.parametrize("rows", PROMPT_ROWS + ["negative"])
def test_encoder_yields_upstreams_rows_and_mask(encoder, image, rows):
    prompt = NEGATIVE_PROMPT if rows == "negative" else prompt_of(rows)
    ids, real = encoder.token_ids(prompt)
    n = real - 1 - encoder.template_tokens
    if rows != "negative":
        assert n == rows
    states, mask = upstream_encoding(encoder, prompt, image)
    ours = encoder.encode(prompt, image)
    assert ours.states.shape == states.shape == (1, TEXT_MAX_TOKENS + IMAGE_FEATURES - 1, 16)
    # same tolerance as the refiner checks below: the attention sharpened ×30 turns fp32 summation
    # order (ours vs the step-by-step merge) into differences of a few 1e-5 (seen once at 3.8e-5)
    torch.testing.assert_close(ours.states, states, rtol=1e-4, atol=1e-4)
    assert torch.equal(ours.mask, mask)
    # the misalignment, spelled out: prompt rows, image feature 0, image features 256 - n .. 575
    # and 255 - n pad rows are marked valid; image features 1 .. 255 - n are not
    expected = torch.zeros(TEXT_MAX_TOKENS + IMAGE_FEATURES - 1, dtype=mask.dtype)
    expected[: n + 1] = 1
    expected[TEXT_MAX_TOKENS:] = 1
    assert torch.equal(mask[0], expected)
    assert int(mask.sum()) == n + IMAGE_FEATURES


@pytest.mark.parametrize("rows", [5, 255])
def test_text_tokens_all_keeps_the_prompt_and_every_image_feature_without_a_mask(encoder, image, rows):
    from avatarbot.avatar.hunyuan.conditioning import LlavaPromptEncoder

    everything = LlavaPromptEncoder(
        encoder.tokenizer, encoder.llava, encoder.clip_tokenizer, encoder.clip,
        template_tokens=encoder.template_tokens, text_tokens="all",
    )  # fmt: skip
    ours = everything.encode(prompt_of(rows), image)
    states, _ = upstream_encoding(encoder, prompt_of(rows), image)
    assert ours.mask is None
    torch.testing.assert_close(ours.states, states[:, : rows + IMAGE_FEATURES])


def test_a_prompt_too_long_for_upstream_still_ends_on_the_photo(encoder, image):
    """Upstream's truncation would cut <image> and 4.45.1's merge would fail; we keep 255 rows of
    text before the photo's features."""
    ids, real = encoder.token_ids(prompt_of(400))
    assert real == encoder.max_tokens and ids[-1] == encoder.llava.config.image_token_id
    ours = encoder.encode(prompt_of(400), image)
    assert int(ours.mask.sum()) == 255 + IMAGE_FEATURES


@pytest.mark.parametrize("rows", PROMPT_ROWS + ["negative"])
def test_refiner_rows_and_joined_rows_equal_upstreams(encoder, image, transformer, rows):
    """The refiner uses the mask row by row (rows marked invalid are refined attending to row 0
    only); the double and single blocks see the first mask.sum() refined rows; the whole forward
    equals upstream's with that mask."""
    model, official = transformer
    prompt = NEGATIVE_PROMPT if rows == "negative" else prompt_of(rows)
    encoded = encoder.encode(prompt, image)
    t = torch.tensor([700.0])
    with torch.no_grad():
        refined = model.context_embedder(encoded.states, t, encoded.mask)
        expected = official_refiner(official, CONFIG, encoded.states, t, encoded.mask)
    torch.testing.assert_close(refined, expected, rtol=1e-4, atol=1e-4)

    g = torch.Generator().manual_seed(2)
    frames, height, width = 2, 4, 4
    inputs = dict(
        x=torch.randn(1, 4, frames, height, width, generator=g),
        t=t,
        ref=torch.randn(1, 4, frames, height, width, generator=g),
        txt=encoded.states,
        pooled=torch.randn(1, CONFIG["pooled_projection_dim"], generator=g),
        audio=torch.randn(1, 4 * frames - 3, 10, CONFIG["audio_states"], CONFIG["audio_channels"], generator=g),
        mask=torch.ones(1, 1, 1, height, width),
        m_exp=torch.full((1, 4), 30.0),
        m_pose=torch.full((1, 4), 25.0),
        fps=torch.tensor([25.0]),
    )
    seen = {}

    def record(module, args, kwargs):
        seen["text"], seen["mask"] = args[1], args[3]

    hook = model.transformer_blocks[0].register_forward_pre_hook(record, with_kwargs=True)
    try:
        with torch.no_grad():
            ours = model(
                inputs["x"], t, inputs["ref"], encoded.states, inputs["pooled"], inputs["audio"], inputs["mask"],
                inputs["m_exp"], inputs["m_pose"], inputs["fps"], encoder_attention_mask=encoded.mask,
            ).sample  # fmt: skip
            upstream = _official_forward(official, CONFIG, **inputs, text_mask=encoded.mask)
    finally:
        hook.remove()
    joined = int(encoded.mask.sum())
    assert seen["mask"] is None  # no mask in the joint attention
    torch.testing.assert_close(seen["text"], expected[:, :joined], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours, upstream, rtol=1e-4, atol=1e-4)


def test_pipeline_passes_each_prompts_mask_to_the_transformer():
    """Phase 1 of guidance: the conditional branch gets the prompt's rows and mask, the
    unconditional branch the negative prompt's."""
    pipeline = tiny_pipeline()
    encoded = []
    encode = pipeline.prompt_encoder.encode
    pipeline.prompt_encoder.encode = lambda *a: encoded.append(encode(*a)) or encoded[-1]
    calls = []
    pipeline.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((kwargs["encoder_hidden_states"], kwargs["encoder_attention_mask"])),
        with_kwargs=True,
    )
    pipeline(image=_photo().rgb, audio=_speech(0.3).samples, num_inference_steps=1, quality=64)
    positive, negative = encoded
    assert int(positive.mask.sum()) != int(negative.mask.sum())
    assert len(calls) == 2
    for (states, mask), prompt in zip(calls, (positive, negative), strict=True):
        assert torch.equal(mask, prompt.mask)
        torch.testing.assert_close(states, prompt.states)
