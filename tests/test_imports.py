"""The light parts of avatarbot must never pull in torch: bots start fast, CPU users need no GPU stack."""

import subprocess
import sys

import pytest

LIGHT_MODULES = [
    "avatarbot",
    "avatarbot.cli",
    "avatarbot.settings",
    "avatarbot.media.images",
    "avatarbot.media.audio",
    "avatarbot.media.video",
    "avatarbot.tts",
    "avatarbot.avatar",
    "avatarbot.avatar.lite",
    "avatarbot.avatar.hunyuan",
    "avatarbot.render",
    "avatarbot.tasks",
    "avatarbot.bots",
    "avatarbot.service.flow",
    "avatarbot.bots.telegram",
    "avatarbot.bots.discord",
]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_module_does_not_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"], f"{module} imported torch or diffusers"


def test_bots_import_no_engine_stack():
    """The chat side stays free of the heavy numeric stack an engine pulls in."""
    code = "import sys, avatarbot.service.flow; print(sorted(m for m in ('torch','diffusers','transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
