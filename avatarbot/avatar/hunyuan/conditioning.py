"""What the transformer is conditioned on: prompt embeddings (LLaVA sees the photo too, CLIP-L
gives the pooled vector), whisper features windowed per video frame, and the face mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from avatarbot.avatar.hunyuan import schedule

# The official prompt: a fixed quality prefix, the LLaMA-3 chat template of HunyuanVideo, and a
# closing line whose <image> token LLaVA replaces with the photo's 576 vision tokens.
PROMPT_PREFIX = "Authentic, Realistic, Natural, High-quality, Lens-Fixed, "
DEFAULT_SCENE = "A person is talking to the camera."
NEGATIVE_PROMPT = (
    "Aerial view, aerial view, overexposed, low quality, deformation, a poor composition, bad hands, "
    "bad teeth, bad eyes, bad limbs, distortion, blurring, Lens changes"
)
PROMPT_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
)
TEMPLATE_TOKENS = 95  # the template's system part, cut from the encoder output
IMAGE_SUFFIX = "\nThe person looks like<image>"
TEXT_MAX_TOKENS = 256  # prompt tokens kept after the template (upstream text_len)
HIDDEN_STATE_FROM_END = 3  # the third-last LLaMA hidden state (upstream skips 2 layers)
CLIP_MAX_TOKENS = 77
LLAVA_IMAGE_SIZE = 336
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def full_prompt(scene: str) -> str:
    return PROMPT_PREFIX + (scene.strip() or DEFAULT_SCENE)


TEXT_TOKENS = ("upstream", "all")  # the `hunyuan.text_tokens` setting


@dataclass
class PromptEmbeddings:
    states: torch.Tensor  # (1, rows, text_embed_dim)
    pooled: torch.Tensor  # (1, pooled_projection_dim)
    # (1, rows) upstream's text mask, which the transformer uses as upstream does (see the model);
    # None when every row is meant to be seen (text_tokens = "all").
    mask: torch.Tensor | None = None


def stack_prompts(prompts: list[PromptEmbeddings]) -> PromptEmbeddings:
    """Several prompts as one batch (both guidance branches in one transformer call). Shorter
    rows are padded with zeros and a mask that marks them invalid; a prompt without a mask counts
    all its rows valid. The transformer then treats each row exactly as alone: the refiner masks
    row by row and the joint blocks keep each prompt's own first mask.sum() rows (see the model)."""
    rows = max(p.states.shape[1] for p in prompts)
    if all(p.mask is None and p.states.shape[1] == rows for p in prompts):
        masks = None
    else:
        masks = torch.cat(
            [
                F.pad(p.mask if p.mask is not None else p.states.new_ones(p.states.shape[:2], dtype=torch.long),
                      (0, rows - p.states.shape[1]))
                for p in prompts
            ]
        )  # fmt: skip
    states = torch.cat([F.pad(p.states, (0, 0, 0, rows - p.states.shape[1])) for p in prompts])
    return PromptEmbeddings(states=states, pooled=torch.cat([p.pooled for p in prompts]), mask=masks)


def llava_pixels(image: np.ndarray) -> torch.Tensor:
    """(1, 3, 336, 336) CLIP-normalised pixels of the photo, as upstream feeds LLaVA."""
    resized = Image.fromarray(image).resize((LLAVA_IMAGE_SIZE, LLAVA_IMAGE_SIZE), Image.BILINEAR)
    pixels = (np.asarray(resized, dtype=np.float32) / 255.0 - CLIP_MEAN) / CLIP_STD
    return torch.from_numpy(pixels).permute(2, 0, 1)[None]


class LlavaPromptEncoder:
    """LLaVA-Llama-3 reads the templated prompt with the photo; CLIP-L gives the pooled vector.

    What the DiT was trained with is what upstream's text encoder produced under the transformers
    4.45.1 it pins (hymm_sp/text_encoder/__init__.py `text2tokens` / `encode`, the mask extension
    in hymm_sp/diffusion/pipelines/pipeline_hunyuan_video_audio.py, the lengths in
    hymm_sp/inference.py, and 4.45.1's `LlavaForConditionalGeneration._merge_input_ids_with_image_features`).
    Newer transformers no longer have that merge, so these rules are restated here and LLaVA's
    language model is called directly:

    1. The templated text plus "\nThe person looks like<image>" is tokenized with truncation at
       template + 256 tokens and right-padded to that length (351 for LLaMA-3's tokenizer).
    2. The merge writes [text before <image>][the 576 image features][the pad positions], with the
       pads' embeddings zeroed (where the id equals LLaVA's config `pad_token_id`), attention off
       at the pads, and position ids counting the attended tokens (pads get position 1).
    3. The third-last hidden state is taken and both it and the mask upstream passed in (the
       tokenizer's mask followed by 575 ones, which no longer lines up with the merged rows) are
       cropped at the template length (95).

    So with n text rows before the photo, the mask marks as valid those n rows, image feature 0,
    image features 256 - n .. 575 and the 255 - n pad rows; mask.sum() = n + 576.

    `text_tokens="all"` keeps instead the n + 576 text and image rows with no mask (our earlier
    choice: every image feature, no pad rows), so the two can be compared on real weights.

    Beyond upstream: a prompt so long that truncation cuts "<image>" makes 4.45.1 fail; we end
    the truncated text on <image> instead (n = 255, the longest upstream accepts).
    """

    def __init__(
        self,
        tokenizer,
        llava,
        clip_tokenizer,
        clip,
        template_tokens: int = TEMPLATE_TOKENS,
        text_tokens: str = "upstream",
    ):
        if text_tokens not in TEXT_TOKENS:
            raise ValueError(f"text_tokens must be one of {TEXT_TOKENS}, not {text_tokens!r}")
        if tokenizer.pad_token_id is None:
            raise ValueError("the LLaVA tokenizer has no pad token; upstream pads the prompt with it")
        self.tokenizer, self.llava = tokenizer, llava
        self.clip_tokenizer, self.clip = clip_tokenizer, clip
        self.template_tokens = template_tokens  # 95 for LLaMA-3's tokenizer; tiny test tokenizers differ
        self.text_tokens = text_tokens

    @property
    def modules(self) -> list[torch.nn.Module]:
        return [self.llava, self.clip]

    @property
    def max_tokens(self) -> int:
        return self.template_tokens + TEXT_MAX_TOKENS

    def _image_token(self) -> int:
        config = self.llava.config
        token = getattr(config, "image_token_id", None)
        return config.image_token_index if token is None else token

    def token_ids(self, prompt: str) -> tuple[list[int], int]:
        """Rule 1: (`max_tokens` ids, how many are real), ending on <image> before the pads."""
        text = PROMPT_TEMPLATE.format(prompt) + IMAGE_SUFFIX
        ids = self.tokenizer(text, add_special_tokens=True, truncation=True, max_length=self.max_tokens)["input_ids"]
        image = self._image_token()
        if image not in ids:  # cut by truncation: upstream would fail here
            ids = ids[:-1] + [image]
        real = len(ids)
        return ids + [self.tokenizer.pad_token_id] * (self.max_tokens - real), real

    def _image_features(self, image: np.ndarray) -> torch.Tensor:
        config = self.llava.config
        pixels = llava_pixels(image).to(self.llava.device, self.llava.dtype)
        features = self.llava.model.get_image_features(
            pixel_values=pixels,
            vision_feature_layer=config.vision_feature_layer,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
        ).pooler_output
        return features[0]  # (576, hidden)

    @torch.no_grad()
    def encode(self, prompt: str, image: np.ndarray) -> PromptEmbeddings:
        device = self.llava.device
        ids, real = self.token_ids(prompt)
        at = ids.index(self._image_token())
        input_ids = torch.tensor(ids, device=device)
        embeds = self.llava.get_input_embeddings()(input_ids)
        pad_id = getattr(self.llava.config, "pad_token_id", None)
        if pad_id is not None:
            embeds = embeds.masked_fill((input_ids == pad_id)[:, None], 0.0)  # rule 2: pads zeroed
        features = self._image_features(image).to(embeds.dtype)
        merged = torch.cat([embeds[:at], features, embeds[at + 1 :]])
        token_mask = torch.zeros(len(ids), dtype=torch.long, device=device)
        token_mask[:real] = 1
        attended = torch.cat([token_mask[:at], token_mask.new_ones(len(features)), token_mask[at + 1 :]])
        positions = (attended.cumsum(0) - 1).masked_fill(attended == 0, 1)
        out = self.llava.model.language_model(
            inputs_embeds=merged[None],
            attention_mask=attended[None],
            position_ids=positions[None],
            output_hidden_states=True,
        )
        states = out.hidden_states[-HIDDEN_STATE_FROM_END][:, self.template_tokens :]  # rule 3
        mask = torch.cat([token_mask, token_mask.new_ones(len(features) - 1)])[None, self.template_tokens :]
        if self.text_tokens == "all":
            states, mask = states[:, : at - self.template_tokens + len(features)], None
        clip_ids = self.clip_tokenizer(
            prompt, padding="max_length", max_length=CLIP_MAX_TOKENS, truncation=True, return_tensors="pt"
        )["input_ids"].to(self.clip.device)
        pooled = self.clip(input_ids=clip_ids).pooler_output
        return PromptEmbeddings(states=states, pooled=pooled, mask=mask)


class WhisperAudioEncoder:
    """Whisper-tiny encoder features (all hidden states) for every video frame's 10-token window.

    Whisper encodes 30 s at a time; upstream stops there. We encode every 30 s piece and join the
    token streams, so clips run as long as the audio."""

    def __init__(self, feature_extractor, encoder):
        self.feature_extractor, self.encoder = feature_extractor, encoder

    @property
    def modules(self) -> list[torch.nn.Module]:
        return [self.encoder]

    @torch.no_grad()
    def token_stream(self, samples: np.ndarray) -> torch.Tensor:
        """(tokens, hidden_states, channels) for the whole audio, 50 tokens per second."""
        device, dtype = self.encoder.device, self.encoder.dtype
        pieces = []
        for start, stop in schedule.whisper_chunks(len(samples)):
            features = self.feature_extractor(
                samples[start:stop], sampling_rate=schedule.WHISPER_SAMPLE_RATE, return_tensors="pt"
            ).input_features
            hidden = self.encoder(features.to(device, dtype), output_hidden_states=True).hidden_states
            pieces.append(torch.stack(hidden, dim=2)[0])
        return torch.cat(pieces, dim=0).float()

    def frame_features(self, samples: np.ndarray, num_frames: int) -> torch.Tensor:
        """(num_frames, 10, hidden_states, channels): frame f reads tokens 2f-4 .. 2f+5."""
        return window_tokens(self.token_stream(samples), num_frames)


def window_tokens(tokens: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Each frame's whisper window from a token stream (tokens, ...): 4 zero tokens in front, zeros
    past the end, frame f takes [2f, 2f + 10) of that padded stream."""
    needed = schedule.whisper_tokens_needed(num_frames)
    lead = tokens.new_zeros((schedule.WHISPER_LEAD, *tokens.shape[1:]))
    padded = torch.cat([lead, tokens], dim=0)
    if padded.shape[0] < needed:
        padded = torch.cat([padded, tokens.new_zeros((needed - padded.shape[0], *tokens.shape[1:]))], dim=0)
    index = torch.from_numpy(schedule.whisper_token_indices(num_frames)).to(tokens.device)
    return padded[index]


def face_mask(box: tuple[float, float, float, float] | None, width: int, height: int) -> np.ndarray:
    """(height, width) float mask: 1 inside the grown face box, the whole frame without a face.
    `box` is in the coordinates of the render size."""
    x0, y0, x1, y1 = schedule.face_mask_box(box, width, height)
    mask = np.zeros((height, width), dtype=np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def resample_to_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Whisper needs 16 kHz. Linear interpolation: media/ normally hands us 16 kHz already, this
    only covers callers that did not."""
    if sample_rate == schedule.WHISPER_SAMPLE_RATE:
        return samples.astype(np.float32, copy=False)
    duration = len(samples) / sample_rate
    n_out = max(1, round(duration * schedule.WHISPER_SAMPLE_RATE))
    t_in = np.arange(len(samples)) / sample_rate
    t_out = np.arange(n_out) / schedule.WHISPER_SAMPLE_RATE
    return np.interp(t_out, t_in, samples).astype(np.float32)
