"""One typed settings model for every avatarbot process.

Values come, highest priority first, from keyword arguments, environment variables
(`AVATARBOT_*`, nested sections joined with `__`, e.g. `AVATARBOT_TELEGRAM__TOKEN`), a TOML
file (`--config PATH` or `AVATARBOT_CONFIG`), then the defaults below. Every setting is
documented in `config/avatarbot.example.toml`; keep the two in step.

Secrets are `SecretStr` so they never print in a repr, a log line or an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from avatarbot.vocab import QUALITY_TABLE, Quality

CONFIG_ENV_VAR = "AVATARBOT_CONFIG"


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("avatarbot", appauthor=False))


def read_secret(value: SecretStr | None, file: Path | None) -> str | None:
    """A token given inline wins; otherwise it is read from `file` (for Docker/systemd secrets)."""
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if file is not None:
        return file.read_text(encoding="utf-8").strip() or None
    return None


class _Section(BaseModel):
    """A settings section: unknown keys are errors, so a typo in a config file never goes unnoticed."""

    model_config = ConfigDict(extra="forbid")


class LimitsSettings(_Section):
    """What a request may contain. Checked before any GPU time is spent."""

    max_audio_seconds: float = 60.0
    min_audio_seconds: float = 0.3  # shorter than a syllable: nothing to lip-sync
    max_text_chars: int = 500
    max_image_pixels: int = 40_000_000
    min_image_side: int = 64
    max_download_bytes: int = 25 * 1024 * 1024
    # One overall deadline per file download (connect + every byte): a host that stalls or
    # trickles is cut off here, and the user is told the file couldn't be fetched.
    download_deadline_s: float = Field(60.0, gt=0)


class RenderSettings(_Section):
    engine: Literal["lite", "hunyuan"] = "lite"
    quality: Quality = Quality.STANDARD
    motion: float = Field(1.0, ge=0.0, le=2.0)
    # Encoder quality (x264 CRF) per preset; lower is better and bigger.
    crf: dict[str, int] = {quality: preset.crf for quality, preset in QUALITY_TABLE.items()}


class TTSSettings(_Section):
    # "auto": edge-tts, falling back to the offline engine when the service can't be reached.
    engine: Literal["auto", "edge", "offline"] = "auto"
    default_voice: str = "en-female"  # a name from avatarbot.tts.voices, checked when speaking
    edge_timeout_s: float = Field(15.0, gt=0)


class RedisSettings(_Section):
    # Empty: `avatarbot run` starts an embedded redis-server under data_dir.
    url: str | None = None


class JobSettings(_Section):
    # Must exceed the longest render, or Redis re-delivers a running task (celery #5935).
    visibility_timeout_s: int = 6 * 3600
    render_time_limit_s: int = 2 * 3600
    lease_s: int = 60
    result_ttl_s: int = 7 * 24 * 3600
    blob_ttl_s: int = 3 * 24 * 3600
    max_blob_bytes: int = 200 * 1024 * 1024
    dedup_window_s: int = 600
    max_concurrent_per_user: int = 2
    max_per_user_per_hour: int = 10
    max_per_server_per_hour: int = 100
    # Where blobs (inputs, clips) live: "redis" works across machines; "directory" needs a shared disk.
    blob_store: Literal["redis", "directory"] = "redis"
    blob_dir: Path | None = None  # default: <data_dir>/blobs
    # How long a bot may take to post a finished clip before another bot process may try.
    delivery_claim_s: int = 300
    # `avatarbot run` stop: how long a running render may finish before the worker is killed.
    shutdown_grace_s: float = 10.0


class TelegramSettings(_Section):
    token: SecretStr | None = None
    token_file: Path | None = None
    # A self-hosted Bot API server (`telegram-bot-api --local`) lifts the 20/50 MB file limits.
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    local_mode: bool = False
    upload_limit_bytes: int | None = None  # None: the platform's limit for the chosen mode
    allowed_chats: list[int] = []  # empty: every chat
    admins: list[int] = []

    def resolved_token(self) -> str | None:
        return read_secret(self.token, self.token_file)


class DiscordSettings(_Section):
    token: SecretStr | None = None
    token_file: Path | None = None
    api_base: str | None = None  # REST proxy, e.g. "http://127.0.0.1:8080/api/v10"
    gateway_url: str | None = None
    message_content_intent: bool = True
    # Guild ids to sync commands to at start (fast, for development); empty: sync globally.
    sync_guilds: list[int] = []
    # Hosts besides Discord's CDN that attachments may be downloaded from (a media proxy on your
    # network; tests use 127.0.0.1). Only these may be plain http.
    cdn_hosts: list[str] = []
    # A status message is edited at most this often (Discord rate-limits edits per channel).
    status_edit_interval_s: float = Field(2.0, ge=0.2)

    def resolved_token(self) -> str | None:
        return read_secret(self.token, self.token_file)


class WebSettings(_Section):
    """The local web page (`avatarbot web`, or part of `avatarbot run` when enabled)."""

    enabled: bool = False  # `avatarbot run` serves the page too
    # Loopback by default: the page is for trying avatarbot on this machine. To expose it, set a
    # host such as "0.0.0.0" and a password (ideally behind a TLS proxy).
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    password: SecretStr | None = None
    password_file: Path | None = None

    def resolved_password(self) -> str | None:
        return read_secret(self.password, self.password_file)


class HunyuanSettings(_Section):
    weights_dir: Path | None = None
    dtype: Literal["bf16", "fp8"] = "bf16"
    offload: Literal["none", "model", "block"] = "none"
    compile: bool = False
    num_inference_steps: int = Field(50, ge=1)
    # Classifier-free guidance at the first step (upstream 7.5); later steps follow its schedule.
    guidance_scale: float = Field(7.5, ge=1.0)
    # Reuse cached transformer features on 20 of 50 steps (upstream's "deepcache"): ~40 % fewer FLOPs.
    step_cache: bool = True
    # Which LLaVA rows condition the transformer. "upstream": exactly what the model was trained
    # with (right-padded prompt, upstream's misaligned text mask, refiner masked row by row, the
    # first mask.sum() rows joined with the video). "all": the prompt and all 576 photo features,
    # no pad rows, no mask (our earlier choice), kept to compare the two on real weights.
    text_tokens: Literal["upstream", "all"] = "upstream"
    # Speed modes (README "Speed modes"; each computes what the default path does, within the
    # stated numerics). Both guidance branches as one batch of two: the weights are read once per
    # step (pays most with offload = "block"), the activations double.
    cfg_batch: bool = False
    # The joint attention's kernel: "sdpa" (torch picks), "flash" / "cudnn" / "efficient" (torch's
    # own kernels), "flash-attn" / "sage" (those packages, when installed).
    attention: Literal["sdpa", "flash", "cudnn", "efficient", "flash-attn", "sage"] = "sdpa"
    # fp8 x fp8 matmuls in the blocks (torchao; Ada / Hopper or newer), on top of dtype bf16 or fp8.
    fp8_compute: bool = False
    # Where torch.compile keeps compiled kernels between worker restarts (default: torch's, in /tmp).
    compile_cache_dir: Path | None = None
    # One render across the GPUs of `avatarbot worker --gpus`: "ulysses" (all-to-all; heads must
    # divide by the GPU count) or "ring" (needs an attention kernel that returns softmax statistics: flash, cudnn, flash-attn or sage).
    context_parallel: Literal["ulysses", "ring"] = "ulysses"
    # GPUs one render spans; `avatarbot worker --gpus 0,1,...` sets it to the number listed.
    gpus_per_render: int = Field(1, ge=1)


class MetricsSettings(_Section):
    """`/healthz`, `/readyz` and `/metrics` (Prometheus) of each worker and bot process."""

    # Off when unset. Each process needs its own port: one per worker, one per bot.
    port: int | None = Field(None, ge=1, le=65535)
    # Loopback by default: the endpoints have no authentication. "0.0.0.0" in a container.
    host: str = "127.0.0.1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AVATARBOT_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    log_level: str = "INFO"
    limits: LimitsSettings = LimitsSettings()
    render: RenderSettings = RenderSettings()
    tts: TTSSettings = TTSSettings()
    redis: RedisSettings = RedisSettings()
    jobs: JobSettings = JobSettings()
    telegram: TelegramSettings = TelegramSettings()
    discord: DiscordSettings = DiscordSettings()
    web: WebSettings = WebSettings()
    hunyuan: HunyuanSettings = HunyuanSettings()
    metrics: MetricsSettings = MetricsSettings()

    @model_validator(mode="after")
    def _visibility_above_time_limit(self) -> Settings:
        if self.jobs.visibility_timeout_s <= self.jobs.render_time_limit_s:
            raise ValueError(
                "jobs.visibility_timeout_s must be above jobs.render_time_limit_s, "
                "or Redis hands a still-running render to a second worker"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = os.environ.get(CONFIG_ENV_VAR)
        if config_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_path)))
        return tuple(sources)


def load_settings(config: Path | str | None = None, **overrides) -> Settings:
    """Settings from the environment, plus a TOML file when one is named."""
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        previous = os.environ.get(CONFIG_ENV_VAR)
        os.environ[CONFIG_ENV_VAR] = str(path)
        try:
            return Settings(**overrides)
        finally:
            if previous is None:
                os.environ.pop(CONFIG_ENV_VAR, None)
            else:
                os.environ[CONFIG_ENV_VAR] = previous
    return Settings(**overrides)
