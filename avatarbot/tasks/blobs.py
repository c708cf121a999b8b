"""Blob storage for inputs (normalised photo and audio) and finished clips.

Blobs are content-addressed (key = SHA-256 + a suffix), so storing the same photo twice costs
nothing and a key never points at different bytes. Every blob expires `blob_ttl_s` after it was
last stored, which bounds disk and memory use without a cleanup job to schedule.

Two backends, chosen by `jobs.blob_store`:
- "redis" (default): works across machines with nothing else to share. Redis holds values in
  memory, so size `maxmemory` for a few days of clips.
- "directory": files under `jobs.blob_dir` (default `<data_dir>/blobs`); across machines only on
  a shared filesystem (NFS, a mounted bucket).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Protocol

import redis

from avatarbot import messages
from avatarbot.errors import FileTooBigError
from avatarbot.tasks import keys

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 3600  # the directory store deletes expired files at most this often


class BlobMissingError(KeyError):
    """The blob expired or never existed."""


class BlobStore(Protocol):
    def put(self, data: bytes, suffix: str) -> str: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...


def blob_key(data: bytes, suffix: str) -> str:
    if not suffix.startswith(".") or "/" in suffix:
        raise ValueError(f"blob suffix must look like '.png', got {suffix!r}")
    return hashlib.sha256(data).hexdigest() + suffix


def _check_size(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise FileTooBigError(messages.file_too_big(max_bytes), detail=f"blob of {len(data)} bytes > {max_bytes}")


def _check_key(key: str) -> None:
    if "/" in key or key.startswith(".") or len(key) < 65:
        raise BlobMissingError(key)


class RedisBlobStore:
    def __init__(self, client: redis.Redis, *, ttl_s: int, max_bytes: int, prefix: str = keys.PREFIX):
        self.redis = client
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return keys.blob(key, self.prefix)

    def put(self, data: bytes, suffix: str) -> str:
        _check_size(data, self.max_bytes)
        key = blob_key(data, suffix)
        if not self.redis.expire(self._name(key), self.ttl_s):  # already stored: just keep it longer
            self.redis.set(self._name(key), data, ex=self.ttl_s)
        return key

    def get(self, key: str) -> bytes:
        _check_key(key)
        data = self.redis.get(self._name(key))
        if data is None:
            raise BlobMissingError(key)
        return data

    def exists(self, key: str) -> bool:
        return bool(self.redis.exists(self._name(key)))


class DirectoryBlobStore:
    def __init__(self, root: Path, *, ttl_s: int, max_bytes: int):
        self.root = Path(root)
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._last_sweep = 0.0

    def _path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key[:2] / key

    def _expired(self, path: Path) -> bool:
        return path.stat().st_mtime < time.time() - self.ttl_s

    def put(self, data: bytes, suffix: str) -> str:
        _check_size(data, self.max_bytes)
        key = blob_key(data, suffix)
        path = self._path(key)
        if path.exists():
            os.utime(path)  # the TTL counts from the last store
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write-then-rename: a reader never sees half a file, two writers never clash.
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as tmp:
                tmp.write(data)
            os.replace(tmp.name, path)
        self.maybe_sweep()
        return key

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            if self._expired(path):
                raise BlobMissingError(key)
            return path.read_bytes()
        except FileNotFoundError:
            raise BlobMissingError(key) from None

    def exists(self, key: str) -> bool:
        try:
            return not self._expired(self._path(key))
        except (FileNotFoundError, BlobMissingError):
            return False

    def maybe_sweep(self) -> int:
        """Delete expired blobs (at most once per SWEEP_INTERVAL_S); returns how many."""
        now = time.time()
        if now - self._last_sweep < SWEEP_INTERVAL_S:
            return 0
        self._last_sweep = now
        return self.sweep()

    def sweep(self) -> int:
        removed = 0
        cutoff = time.time() - self.ttl_s
        for path in self.root.glob("*/*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        if removed:
            log.info("removed %d expired blobs from %s", removed, self.root)
        return removed


def blob_store_from_settings(settings) -> BlobStore:
    jobs = settings.jobs
    if jobs.blob_store == "directory":
        root = jobs.blob_dir or Path(settings.data_dir) / "blobs"
        return DirectoryBlobStore(root, ttl_s=jobs.blob_ttl_s, max_bytes=jobs.max_blob_bytes)
    from avatarbot.tasks.connection import redis_client

    return RedisBlobStore(redis_client(settings, decode=False), ttl_s=jobs.blob_ttl_s, max_bytes=jobs.max_blob_bytes)
