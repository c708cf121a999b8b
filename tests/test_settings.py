from pathlib import Path

import pytest
from pydantic import ValidationError

from avatarbot.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "avatarbot.example.toml"


def test_example_config_loads_and_matches_defaults():
    """The example documents the defaults: loading it must give exactly the default settings."""
    assert load_settings(EXAMPLE).model_dump() == Settings().model_dump()


def test_env_overrides_nested(monkeypatch):
    monkeypatch.setenv("AVATARBOT_LIMITS__MAX_AUDIO_SECONDS", "12.5")
    monkeypatch.setenv("AVATARBOT_TELEGRAM__TOKEN", "123:secret-token")
    settings = Settings()
    assert settings.limits.max_audio_seconds == 12.5
    assert settings.telegram.resolved_token() == "123:secret-token"
    assert "secret-token" not in repr(settings)
    assert "secret-token" not in str(settings.model_dump())


def test_env_beats_file(monkeypatch, tmp_path):
    config = tmp_path / "a.toml"
    config.write_text("[render]\nquality = 'high'\n[limits]\nmax_text_chars = 99\n")
    monkeypatch.setenv("AVATARBOT_LIMITS__MAX_TEXT_CHARS", "42")
    settings = load_settings(config)
    assert settings.render.quality == "high"
    assert settings.limits.max_text_chars == 42


def test_token_from_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("abc:from-file\n")
    settings = Settings(discord={"token_file": token_file})
    assert settings.discord.resolved_token() == "abc:from-file"


def test_unknown_key_is_an_error(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[render]\nqualty = 'high'\n")
    with pytest.raises(ValidationError):
        load_settings(config)


def test_visibility_timeout_must_exceed_render_limit():
    with pytest.raises(ValidationError, match="visibility_timeout_s"):
        Settings(jobs={"visibility_timeout_s": 3600, "render_time_limit_s": 7200})
