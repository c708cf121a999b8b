"""deploy/: what can be checked without a Docker engine or a systemd that runs units.

- the compose file parses, has every service (Redis with AOF and a password, both bots, the
  lite worker, one GPU worker per device with an NVIDIA reservation, Flower), and each service's
  environment loads as avatarbot settings;
- every AVATARBOT_* variable in compose, units, Dockerfiles and env examples is a setting;
- the Dockerfiles copy only what exists;
- the systemd units pass `systemd-analyze verify` (with ExecStart pointed at this venv's
  avatarbot, since /opt/avatarbot is not installed here);
- the Grafana dashboard shows every metric we export, and only those.

Not run here: `docker compose up`, image builds, units under a running systemd.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avatarbot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
VARIABLE = re.compile(r"\bAVATARBOT_[A-Z0-9_]+")
COMPOSE_SUBSTITUTION = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def substitute(value: str) -> str:
    """Compose's ${VAR:-default} and ${VAR:?message}: the default, or a stand-in value."""
    return COMPOSE_SUBSTITUTION.sub(lambda m: "x" if "?" in m.group(0) else (m.group(2) or ""), value)


def setting_exists(variable: str) -> bool:
    """AVATARBOT_SECTION__KEY names a field of a settings section, AVATARBOT_KEY a top-level one."""
    section, _, key = variable.removeprefix("AVATARBOT_").lower().partition("__")
    field = Settings.model_fields.get(section)
    if field is None:
        return False
    fields = getattr(field.annotation, "model_fields", None)
    return key in fields if fields is not None else not key


def test_compose_has_every_service_and_what_each_needs():
    services = compose()["services"]
    assert set(services) == {"redis", "telegram", "discord", "worker-lite", "gpu0", "gpu1", "flower"}

    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis and "--requirepass" in redis and "noeviction" in redis

    for bot in ("telegram", "discord"):
        assert services[bot]["profiles"] == [bot] and services[bot]["command"] == [bot]
        assert services[bot]["environment"][f"AVATARBOT_{bot.upper()}__TOKEN_FILE"] == f"/run/secrets/{bot}_token"

    assert services["worker-lite"]["command"] == ["worker"] and "profiles" not in services["worker-lite"]
    devices = []
    for name in ("gpu0", "gpu1"):
        gpu = services[name]
        assert gpu["profiles"] == ["gpu"] and gpu["command"] == ["worker"]
        assert gpu["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
        assert gpu["environment"]["AVATARBOT_RENDER__ENGINE"] == "hunyuan"
        (reservation,) = gpu["deploy"]["resources"]["reservations"]["devices"]
        assert reservation["driver"] == "nvidia" and reservation["capabilities"] == ["gpu"]
        devices += reservation["device_ids"]
    assert devices == ["0", "1"]  # one worker per GPU

    assert "flower" in services["flower"]["entrypoint"]
    for name, service in services.items():
        if name == "redis":
            continue
        url = service["environment"]["AVATARBOT_REDIS__URL"]
        assert url.startswith("redis://:${REDIS_PASSWORD") and url.endswith("@redis:6379/0")
        assert service["environment"]["AVATARBOT_METRICS__PORT"] == "9100"


def test_each_compose_service_environment_loads_as_settings(monkeypatch):
    for name, service in compose()["services"].items():
        environment = {k: substitute(str(v)) for k, v in service.get("environment", {}).items()}
        if not any(key.startswith("AVATARBOT_") for key in environment):
            continue
        for key in [k for k in os.environ if k.startswith("AVATARBOT_")]:
            monkeypatch.delenv(key)
        for key, val in environment.items():
            monkeypatch.setenv(key, val)
        settings = Settings()
        assert settings.metrics.port == 9100 and settings.metrics.host == "0.0.0.0", name
        assert settings.redis.url == "redis://:x@redis:6379/0", name


def deploy_texts() -> dict[str, str]:
    files = [DEPLOY / "compose.yaml", DEPLOY / "env.example", DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.gpu"]
    files += UNITS + [DEPLOY / "systemd" / "avatarbot.env.example"]
    return {str(path.relative_to(ROOT)): path.read_text() for path in files}


def test_every_avatarbot_variable_in_deploy_is_a_setting():
    used = {(name, variable) for name, text in deploy_texts().items() for variable in VARIABLE.findall(text)}
    assert len({variable for _, variable in used}) >= 10
    unknown = sorted((name, variable) for name, variable in used if not setting_exists(variable))
    assert unknown == []


def test_setting_exists_tells_a_typo():
    assert setting_exists("AVATARBOT_METRICS__PORT") and setting_exists("AVATARBOT_DATA_DIR")
    assert not setting_exists("AVATARBOT_METRICS__PROT") and not setting_exists("AVATARBOT_METRIC__PORT")


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfiles_copy_only_what_exists(dockerfile):
    text = (DEPLOY / dockerfile).read_text()
    copied = [part for line in text.splitlines() if line.startswith("COPY ") for part in line.split()[1:-1]]
    assert copied and all((ROOT / part).exists() for part in copied), copied
    assert "python3 -m venv" in text  # never pip into the image's system Python (PEP 668)
    assert "USER avatarbot" in text


def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (scripts/setup.sh --dev installs it as root)")
    avatarbot = Path(sys.executable).parent / "avatarbot"
    assert avatarbot.is_file()
    names = []
    for unit in UNITS:
        text = unit.read_text().replace("/opt/avatarbot/.venv/bin/avatarbot", str(avatarbot))
        name = unit.name.replace("@.service", "@0.service")  # a template is verified as an instance
        (tmp_path / name).write_text(text)
        names.append(name)
    assert {"avatarbot-worker@0.service", "avatarbot-telegram.service", "avatarbot-discord.service"} <= set(names)
    result = subprocess.run([analyze, "verify", *names], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    # Unknown keys are only warnings: any line about our files is a finding.
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "avatarbot" in line]
    assert result.returncode == 0 and complaints == [], result.stdout + result.stderr


def exported_metrics() -> set[str]:
    from prometheus_client import Counter, Histogram

    from avatarbot.observability import metrics

    names = {m._name for m in vars(metrics).values() if isinstance(m, Counter | Histogram)}
    return names | {metrics.JOBS_BY_STATE, metrics.REDIS_UP}


def test_grafana_dashboard_shows_every_metric_and_only_real_ones():
    dashboard = json.loads((DEPLOY / "grafana" / "avatarbot-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {
        re.sub(r"_(bucket|total|count|sum)$", "", name) for e in expressions for name in re.findall(r"avatarbot_\w+", e)
    }
    assert used == exported_metrics()


def test_prometheus_example_parses():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == {"avatarbot", "flower"}
