"""What the transformer is conditioned on: prompt embeddings (LLaVA sees the photo too, CLIP-L
gives the pooled vector), whisper features windowed per video frame, and the face mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
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


@dataclass
class PromptEmbeddings:
    states: torch.Tensor  # (1, tokens, text_embed_dim), padding already removed
    pooled: torch.Tensor  # (1, pooled_projection_dim)


def llava_pixels(image: np.ndarray) -> torch.Tensor:
    """(1, 3, 336, 336) CLIP-normalised pixels of the photo, as upstream feeds LLaVA."""
    resized = Image.fromarray(image).resize((LLAVA_IMAGE_SIZE, LLAVA_IMAGE_SIZE), Image.BILINEAR)
    pixels = (np.asarray(resized, dtype=np.float32) / 255.0 - CLIP_MEAN) / CLIP_STD
    return torch.from_numpy(pixels).permute(2, 0, 1)[None]


class LlavaPromptEncoder:
    """LLaVA-Llama-3 reads the templated prompt with the photo; CLIP-L gives the pooled vector."""

    def __init__(self, tokenizer, llava, clip_tokenizer, clip, template_tokens: int = TEMPLATE_TOKENS):
        self.tokenizer, self.llava = tokenizer, llava
        self.clip_tokenizer, self.clip = clip_tokenizer, clip
        self.template_tokens = template_tokens  # 95 for LLaMA-3's tokenizer; tiny test tokenizers differ

    @property
    def modules(self) -> list[torch.nn.Module]:
        return [self.llava, self.clip]

    def _image_token_count(self) -> int:
        vision = self.llava.config.vision_config
        count = (vision.image_size // vision.patch_size) ** 2
        if getattr(self.llava.config, "vision_feature_select_strategy", "default") == "full":
            count += 1
        return count

    @torch.no_grad()
    def encode(self, prompt: str, image: np.ndarray) -> PromptEmbeddings:
        device = self.llava.device
        text = PROMPT_TEMPLATE.format(prompt) + IMAGE_SUFFIX
        ids = self.tokenizer(
            text, add_special_tokens=True, truncation=True, max_length=self.template_tokens + TEXT_MAX_TOKENS
        )["input_ids"]
        image_token = getattr(self.llava.config, "image_token_id", None)
        if image_token is None:
            image_token = self.llava.config.image_token_index
        if image_token not in ids:  # truncation ate the image placeholder: put it back at the end
            ids = ids[:-1] + [image_token]
        at = ids.index(image_token)
        ids = ids[:at] + [image_token] * self._image_token_count() + ids[at + 1 :]
        input_ids = torch.tensor([ids], device=device)
        out = self.llava(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            pixel_values=llava_pixels(image).to(device, self.llava.dtype),
            output_hidden_states=True,
        )
        states = out.hidden_states[-HIDDEN_STATE_FROM_END][:, self.template_tokens :]
        clip_ids = self.clip_tokenizer(
            prompt, padding="max_length", max_length=CLIP_MAX_TOKENS, truncation=True, return_tensors="pt"
        )["input_ids"].to(self.clip.device)
        pooled = self.clip(input_ids=clip_ids).pooler_output
        return PromptEmbeddings(states=states, pooled=pooled)


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
