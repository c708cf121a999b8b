"""Browser sessions: who is asking (the session id is the requester's user id) and whether they may.

A session is a random id in a cookie, signed with a key kept under `<data_dir>/web/` so a
restart keeps everyone's session (and their jobs). With a password set, a cookie is only handed
out for the right password, and the password is part of the signing key: changing it signs
everyone out. The password itself is compared in constant time and never logged or stored.

A dozen lines of HMAC instead of aiohttp-session: that library needs `cryptography` for encrypted
cookies or a store for server-side ones, and all we keep is an id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

COOKIE_NAME = "avatarbot_session"
COOKIE_MAX_AGE_S = 30 * 24 * 3600
KEY_BYTES = 32


class Sessions:
    def __init__(self, data_dir: Path, password: str | None):
        self.password_required = bool(password)
        self._password_digest = hashlib.sha256((password or "").encode()).digest()
        self._key = _load_key(Path(data_dir) / "web" / "session.key") + self._password_digest

    def new_cookie(self) -> str:
        session_id = secrets.token_hex(16)
        return f"{session_id}.{self._sign(session_id)}"

    def session_id(self, cookie: str | None) -> str | None:
        """The session id in a valid cookie, else None."""
        if not cookie or "." not in cookie:
            return None
        session_id, signature = cookie.split(".", 1)
        if not hmac.compare_digest(signature, self._sign(session_id)):
            return None
        return session_id

    def password_matches(self, attempt: str) -> bool:
        digest = hashlib.sha256(attempt.encode()).digest()
        return self.password_required and hmac.compare_digest(digest, self._password_digest)

    def _sign(self, session_id: str) -> str:
        return hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()[:32]


def _load_key(path: Path) -> bytes:
    """The signing key, made on first use, readable by this user only."""
    if path.is_file():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it a moment ago
        return path.read_bytes()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key
