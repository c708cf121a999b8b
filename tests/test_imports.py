"""The house rules on imports (DESIGN.md §2), checked on the code itself.

- The light parts of avatarbot never pull in torch: bots start fast, CPU users need no GPU stack.
- The layers point one way: `tasks/` and the flow (`service/`) never import a chat surface
  (`bots/`, `web/`) or a chat library, not even lazily inside a function; surfaces import no
  torch and no engine stack.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import avatarbot

PACKAGE = Path(avatarbot.__file__).parent
HEAVY = ("torch", "diffusers", "transformers")
SURFACE_IMPORTS = ("avatarbot.bots", "avatarbot.web", "telegram", "discord")

LIGHT_MODULES = [
    "avatarbot",
    "avatarbot.cli",
    "avatarbot.settings",
    "avatarbot.vocab",
    "avatarbot.media.images",
    "avatarbot.media.audio",
    "avatarbot.media.video",
    "avatarbot.tts",
    "avatarbot.avatar",
    "avatarbot.avatar.lite",
    "avatarbot.avatar.hunyuan",
    "avatarbot.render",
    "avatarbot.tasks",
    "avatarbot.service.flow",
    "avatarbot.service.lifecycle",
    "avatarbot.bots",
    "avatarbot.bots.telegram",
    "avatarbot.bots.discord",
]


def _modules_under(subpackage: str) -> list[str]:
    modules = []
    for path in sorted((PACKAGE / subpackage).rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def _imported_names(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_module_does_not_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"], f"{module} imported torch or diffusers"


@pytest.mark.parametrize("layer", ["tasks", "service"])
def test_tasks_and_the_flow_import_no_surface(layer):
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imported_names(path) if name.startswith(SURFACE_IMPORTS) or name in SURFACE_IMPORTS
        )
        for path in files
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.parametrize("layer", ["tasks", "service"])
def test_importing_tasks_and_the_flow_loads_no_chat_library(layer):
    # celery_app builds the app from the environment at import (the `celery -A` entry point).
    modules = [m for m in _modules_under(layer) if not m.endswith(".celery_app")]
    code = (
        f"import sys, importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in ('telegram', 'discord') "
        f"or m.startswith(('avatarbot.bots', 'avatarbot.web'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_surfaces_import_no_engine_stack():
    """Both bots, fully imported (every adapter module), stay free of the heavy numeric stack."""
    modules = _modules_under("bots")
    assert "avatarbot.bots.telegram.bot" in modules and "avatarbot.bots.discord.bot" in modules
    code = (
        f"import sys, importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
