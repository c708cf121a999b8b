"""Per-user and per-server limits, checked when a request is submitted.

Three limits (0 turns one off): jobs a user has in progress at once, and jobs per rolling hour
per user and per server (guild / group chat). The check and the reservation are one Lua script,
so two requests arriving together can't both slip under a limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from avatarbot import messages
from avatarbot.errors import QuotaError
from avatarbot.tasks import keys

WINDOW_S = 3600  # "per hour" is a rolling hour
CONCURRENT_RETRY_HINT_S = 60.0  # a concurrent-limit refusal can't know when a job ends; a guess
PENDING_RETRY_HINT_S = 60.0  # refused only for requests still being checked: they end soon, a guess
# A reservation whose job record doesn't exist yet still counts as in progress for this long (the
# record is written right after the reservation; only a bot dying in between leaves none).
UNRECORDED_GRACE_S = 300

_CHECK_AND_RESERVE = """
local prefix, platform, user, server, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, window = tonumber(ARGV[6]), tonumber(ARGV[10])
local max_concurrent, max_user, max_server = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])

local active = prefix .. ':active:' .. platform .. ':' .. user
local user_key = prefix .. ':rate:user:' .. platform .. ':' .. user
for _, other in ipairs(redis.call('SMEMBERS', active)) do
  local state = redis.call('HGET', prefix .. ':job:' .. other, 'state')
  local gone = state and state ~= 'queued' and state ~= 'running' and state ~= 'encoding'
  if not state then
    -- No record yet: reserved a moment ago and being created (it still counts), or its bot
    -- died between the two (it stops counting after the grace period).
    local reserved_at = redis.call('ZSCORE', user_key, other)
    gone = not reserved_at or now - tonumber(reserved_at) > tonumber(ARGV[12])
  end
  if gone then redis.call('SREM', active, other) end
end
-- check only: requests this bot is still fetching and decoding count as if reserved already
local user_pending, server_pending = tonumber(ARGV[13]), tonumber(ARGV[14])
if max_concurrent > 0 and redis.call('SCARD', active) + user_pending >= max_concurrent then return {'concurrent', '0'} end

local function wait_for(key, limit, pending)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if limit > 0 and redis.call('ZCARD', key) + pending >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if oldest[2] == nil then return tostring(ARGV[15]) end  -- only pending ones: they'll be decided soon
    return tostring(tonumber(oldest[2]) + window - now)
  end
  return nil
end
local server_key = prefix .. ':rate:server:' .. platform .. ':' .. server
local wait = wait_for(user_key, max_user, user_pending)
if wait then return {'user_hourly', wait} end
if server ~= '' then
  wait = wait_for(server_key, max_server, server_pending)
  if wait then return {'server_hourly', wait} end
end

if ARGV[11] == 'check' then return {'ok', '0'} end

redis.call('ZADD', user_key, now, id)
redis.call('EXPIRE', user_key, window)
if server ~= '' then
  redis.call('ZADD', server_key, now, id)
  redis.call('EXPIRE', server_key, window)
end
redis.call('SADD', active, id)
return {'ok', '0'}
"""


@dataclass(frozen=True)
class QuotaLimits:
    max_concurrent_per_user: int
    max_per_user_per_hour: int
    max_per_server_per_hour: int

    @classmethod
    def from_settings(cls, settings, overrides: dict | None = None) -> QuotaLimits:
        """The operator's limits, tightened by a server's own (its chat settings). A server admin
        can lower a limit but never raise it: the GPUs are the operator's."""
        jobs = settings.jobs
        overrides = overrides or {}
        names = ("max_concurrent_per_user", "max_per_user_per_hour", "max_per_server_per_hour")
        return cls(**{name: _tighter(getattr(jobs, name), overrides.get(name)) for name in names})


def _tighter(operator: int, server: int | None) -> int:
    """The stricter of two limits, where 0 means "no limit"."""
    if server is None or int(server) <= 0:
        return operator
    return int(server) if operator <= 0 else min(operator, int(server))


class Quotas:
    def __init__(self, client: redis.Redis, prefix: str = keys.PREFIX):
        self.redis = client
        self.prefix = prefix
        self._check = client.register_script(_CHECK_AND_RESERVE)

    def reserve(self, job_id: str, platform: str, user_id: str, server_id: str | None, limits: QuotaLimits,
                now: float) -> None:  # fmt: skip
        """Count `job_id` against the requester's limits, or raise QuotaError saying when to retry."""
        self._run(job_id, platform, user_id, server_id, limits, now, "reserve")

    def check(self, platform: str, user_id: str, server_id: str | None, limits: QuotaLimits, now: float,
              pending_user: int = 0, pending_server: int = 0) -> None:  # fmt: skip
        """The same verdict as `reserve`, reserving nothing: refuse a request that can't be
        accepted before spending CPU on its inputs (under load most requests are refused).
        `pending_*`: the caller's other requests from this user / server not reserved yet (still
        being fetched and decoded), counted as if they were. `reserve` still decides, atomically,
        when the job is created."""
        self._run("", platform, user_id, server_id, limits, now, "check", pending_user, pending_server)

    def _run(self, job_id: str, platform: str, user_id: str, server_id: str | None, limits: QuotaLimits,
             now: float, mode: str, pending_user: int = 0, pending_server: int = 0) -> None:  # fmt: skip
        verdict, wait = self._check(
            args=[
                self.prefix,
                platform,
                user_id,
                server_id or "",
                job_id,
                now,
                limits.max_concurrent_per_user,
                limits.max_per_user_per_hour,
                limits.max_per_server_per_hour,
                WINDOW_S,
                mode,
                UNRECORDED_GRACE_S,
                pending_user,
                pending_server,
                PENDING_RETRY_HINT_S,
            ]
        )
        if verdict == "ok":
            return
        wait_s = max(1.0, float(wait))
        detail = f"{platform} user {user_id} server {server_id}: {verdict} limit"
        if verdict == "concurrent":
            raise QuotaError(
                messages.quota_concurrent(limits.max_concurrent_per_user),
                retry_after_s=CONCURRENT_RETRY_HINT_S,
                detail=detail,
            )
        if verdict == "user_hourly":
            raise QuotaError(
                messages.quota_user_hourly(limits.max_per_user_per_hour, wait_s), retry_after_s=wait_s, detail=detail
            )
        raise QuotaError(
            messages.quota_server_hourly(limits.max_per_server_per_hour, wait_s), retry_after_s=wait_s, detail=detail
        )

    def release(self, job_id: str, platform: str, user_id: str, server_id: str | None) -> None:
        """Give back a reservation for a job that was never created."""
        pipe = self.redis.pipeline()
        pipe.srem(keys.active(platform, user_id, self.prefix), job_id)
        pipe.zrem(keys.rate_user(platform, user_id, self.prefix), job_id)
        if server_id:
            pipe.zrem(keys.rate_server(platform, server_id, self.prefix), job_id)
        pipe.execute()
