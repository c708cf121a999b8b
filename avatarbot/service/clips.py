"""A finished clip, fitted to a chat's upload limit, as a temporary file for the surface to upload."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ClipFile:
    """A finished clip ready to upload: a temporary file, deleted by `close()` / `with`."""

    path: Path
    width: int
    height: int
    duration: float
    thumbnail: bytes  # JPEG, within Telegram's thumbnail limits
    size_bytes: int
    _directory: Path | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __enter__(self) -> ClipFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
