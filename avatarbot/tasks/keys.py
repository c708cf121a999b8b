"""Every Redis key avatarbot writes, named in one place (the Lua scripts in jobs.py and quotas.py
build the same names from the prefix they are given; keep them in step with this list).

    <p>:job:<id>                      hash: the job record (jobs.py)
    <p>:job:<id>:history              list: state changes with times
    <p>:lease:<id>                    the render lease of the worker holding the job
    <p>:delivering:<id>               the delivery claim of the bot posting the outcome
    <p>:queue                         zset: queued jobs by time (queue positions)
    <p>:queue_changes                 counter: bumped when the queue moves
    <p>:pending:<platform>            zset: jobs not yet delivered
    <p>:jobs:<platform>               zset: every job of the platform within the result TTL
    <p>:changes:<platform>            counter: bumped on any change to the platform's jobs
    <p>:active:<platform>:<user>      set: the user's unfinished jobs (quotas.py)
    <p>:rate:user:<platform>:<user>   zset: the user's jobs in the last hour (quotas.py)
    <p>:rate:server:<platform>:<id>   zset: the server's jobs in the last hour (quotas.py)
    <p>:dedup:<fingerprint>           the job a request's fingerprint already made (dedup.py)
    <p>:blob:<key>                    bytes: inputs and clips (blobs.py, Redis store)
    <p>:chat:<platform>:<chat>        hash: a chat's own config (service/chat_config.py)
    <p>:posted:<platform>:<chat>:<message>   the job a message of ours belongs to (buttons)
"""

from __future__ import annotations

PREFIX = "avatarbot"


def job(job_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:job:{job_id}"


def job_history(job_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:job:{job_id}:history"


def lease(job_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:lease:{job_id}"


def delivering(job_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:delivering:{job_id}"


def queue(prefix: str = PREFIX) -> str:
    return f"{prefix}:queue"


def queue_changes(prefix: str = PREFIX) -> str:
    return f"{prefix}:queue_changes"


def pending(platform: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:pending:{platform}"


def jobs_of(platform: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:jobs:{platform}"


def changes(platform: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:changes:{platform}"


def active(platform: str, user_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:active:{platform}:{user_id}"


def rate_user(platform: str, user_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:rate:user:{platform}:{user_id}"


def rate_server(platform: str, server_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:rate:server:{platform}:{server_id}"


def chat_config(platform: str, chat_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:chat:{platform}:{chat_id}"


def posted_message(platform: str, chat_id: str, message_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:posted:{platform}:{chat_id}:{message_id}"


def dedup(fingerprint: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:dedup:{fingerprint}"


def blob(key: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:blob:{key}"
