"""The same request twice in a short window is one job.

Users double-tap, Telegram re-sends updates after a bot restart, Discord retries interactions.
The key is the requester plus the *content* of the normalised inputs plus the options the user
chose (a seed left to chance counts as "any seed"), so a re-upload of the same photo matches.
"""

from __future__ import annotations

import hashlib
import json

import redis

from avatarbot.tasks import keys


def dedup_key(platform: str, user_id: str, inputs: dict[str, str], choices: dict) -> str:
    material = json.dumps([platform, user_id, inputs, choices], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


class Deduplicator:
    def __init__(self, client: redis.Redis, *, window_s: int, prefix: str = keys.PREFIX):
        self.redis = client
        self.window_s = window_s
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return keys.dedup(key, self.prefix)

    def claim(self, key: str, job_id: str) -> str | None:
        """Register `job_id` for `key`; None if it is now ours, else the job id already there."""
        if self.window_s <= 0:
            return None
        if self.redis.set(self._name(key), job_id, nx=True, ex=self.window_s):
            return None
        existing = self.redis.get(self._name(key))
        return existing if existing is not None else self.claim(key, job_id)

    def replace(self, key: str, job_id: str) -> None:
        """Point `key` at a new job (the old one failed or was cancelled: a retry is welcome)."""
        if self.window_s > 0:
            self.redis.set(self._name(key), job_id, ex=self.window_s)

    def forget(self, key: str, job_id: str) -> None:
        """Drop the key if it still names `job_id` (its submit was refused)."""
        pipe = self.redis.pipeline()
        name = self._name(key)
        if self.redis.get(name) == job_id:
            pipe.delete(name)
        pipe.execute()
