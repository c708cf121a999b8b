"""Load: many users at once through a real bot against its fake platform server.

Issue 7's target: 1,000 requests from 100 users within a minute, per bot. Everything is real
except the platform: a private redis-server, the bot as its own process (`avatarbot discord` /
`avatarbot telegram`, so its memory is measured alone), a real Celery worker process
(`avatarbot worker`, lite engine at fast quality: the point is the bot under load, not render
speed), and the fake Discord / Telegram server from tests/ in this process, which also plays the
users.

Arrivals are a Poisson process over `--seconds` (N sorted uniform times), users picked at random.
The mix is what people send: Discord `/animate` with photo + voice note, `/animate` with photo +
text (TTS), and voice-message replies to a photo; Telegram voice-note replies to a photo, photos
with an `/animate <text>` caption, and `/animate <text>` replies to a photo. Every input is unique
per user, so the deduplication never hides a request. Quotas stay at their defaults, so most
requests must be refused, each with a reply.

Measured:
- acknowledgement latency per request. Discord: INTERACTION_CREATE sent -> the interaction
  callback reaches the fake; for voice replies (no interaction), the message sent -> the bot's
  first reply to it. Telegram: the update handed out by getUpdates -> the bot's first
  reply to it ("Got it! Checking…", sent before the files are fetched; it is later edited into
  the refusal or the job's status);
- quotas: accepted vs refused (by reason), accepted per user and per server, concurrency per user
  from the job records, and that every request got an answer;
- the Celery `gpu` queue length (Redis LLEN) and the job queue over time;
- the bot process's RSS over time (start, end of load, after the queue drained);
- errors: tracebacks / ERROR lines in the bot's log, bot or worker exits.

    python bench/load.py [--platform discord|telegram|both] [--requests 1000] [--users 100]
                         [--seconds 60] [--record]

`--record` appends the tables to bench/RESULTS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and bench/queue.py would hide
# the standard library's `queue` (which redis-py and multiprocessing import). Use the repo root,
# which also makes `tests` importable (the fake servers).
REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)

import argparse
import asyncio
import io
import os
import platform as platform_info
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import dataclass, field

import numpy as np
import psutil

ACK_TARGET_S = 1.0
SAMPLE_EVERY_S = 1.0
ANSWER_WAIT_S = 120.0  # after the last request: every request must have had its answer by then
DRAIN_WAIT_S = 300.0  # after that: accepted jobs rendered and delivered
BOT_READY_S = 60.0
TOKEN_DISCORD = "MTIzNDU2Nzg5.bench-discord-bot-token.xyz"
TOKEN_TELEGRAM = "123456:bench-telegram-bot-token"
VOICE_NOTES_PER_USER = 32  # distinct recordings; a user's k-th recording is note k


# --- inputs ----------------------------------------------------------------------------------------
@dataclass
class Inputs:
    photo_jpeg: bytes
    voice_notes: list[tuple[bytes, float]]  # (OGG/Opus bytes, seconds)
    too_short_note: bytes  # 0.15 s: decoded, then refused (the warm-up loads the media stack)


def make_inputs(folder: Path) -> Inputs:
    """A small real face (examples/astronaut.jpg at 256 px) and short spoken voice notes."""
    from PIL import Image

    from avatarbot.media.ffmpeg import ffmpeg_exe

    image = Image.open(REPO / "examples" / "astronaut.jpg").convert("RGB")
    image.thumbnail((256, 256), Image.Resampling.LANCZOS)
    photo = io.BytesIO()
    image.save(photo, format="JPEG", quality=88)

    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    notes = []
    for k in range(VOICE_NOTES_PER_USER):
        wav, ogg = folder / f"note{k}.wav", folder / f"note{k}.ogg"
        subprocess.run([espeak, "-s", "190", "-w", str(wav), f"Hello, this is take {k + 1}."], check=True,
                       capture_output=True, timeout=30)  # fmt: skip
        subprocess.run(
            [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", str(wav),
             "-c:a", "libopus", "-b:a", "24k", "-ar", "48000", "-ac", "1", str(ogg)],
            check=True, timeout=60,
        )  # fmt: skip
        import wave

        with wave.open(str(wav)) as handle:
            seconds = handle.getnframes() / handle.getframerate()
        notes.append((ogg.read_bytes(), seconds))
    short = folder / "short.ogg"
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=220:duration=0.15",
         "-c:a", "libopus", "-b:a", "24k", "-ar", "48000", "-ac", "1", str(short)],
        check=True, timeout=60,
    )  # fmt: skip
    return Inputs(photo.getvalue(), notes, short.read_bytes())


def arrival_times(count: int, seconds: float, rng: random.Random) -> list[float]:
    """A Poisson process with exactly `count` events in `seconds`: sorted uniform times."""
    return sorted(rng.uniform(0, seconds) for _ in range(count))


# --- what one request left behind ---------------------------------------------------------------------
@dataclass
class Sent:
    index: int
    kind: str
    user: str  # platform user id
    sent_at: float  # monotonic, when the platform handed the request to the bot
    ack_at: float | None = None  # the platform's acknowledgement (Discord: interaction callback)
    answer_at: float | None = None  # the first words about it: status message, refusal or "got it"
    answers: list[str] = field(default_factory=list)  # every text the bot sent about it
    accepted: bool = False

    @property
    def ack_s(self) -> float | None:
        return None if self.ack_at is None else self.ack_at - self.sent_at

    @property
    def answer_s(self) -> float | None:
        return None if self.answer_at is None else self.answer_at - self.sent_at


@dataclass
class Samples:
    at: list[float] = field(default_factory=list)  # seconds since the load started
    gpu_llen: list[int] = field(default_factory=list)
    jobs_queued: list[int] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    load1: list[float] = field(default_factory=list)


# --- processes -------------------------------------------------------------------------------------------
def write_config(folder: Path, redis_url: str, platform_section: str) -> Path:
    config = folder / "avatarbot.toml"
    config.write_text(
        f'data_dir = "{folder / "data"}"\n'
        'log_level = "INFO"\n'
        f'[redis]\nurl = "{redis_url}"\n'
        '[render]\nengine = "lite"\nquality = "fast"\n'
        '[tts]\nengine = "offline"\n' + platform_section,  # no internet here: edge-tts would only add a failed lookup
        encoding="utf-8",
    )
    return config


# `--without-precheck`: the bot as it was before the quota pre-check (for before/after numbers).
WITHOUT_PRECHECK = (
    "import sys; from avatarbot.service.flow import RequestFlow\n"
    "async def no_check(self, requester): pass\n"
    "RequestFlow.check_quota = no_check\n"
    "from avatarbot.cli import main; sys.exit(main(sys.argv[1:]))\n"
)


def start_process(config: Path, log_path: Path, *args: str, loop_debug: bool = False,
                  without_precheck: bool = False) -> subprocess.Popen:  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    if loop_debug:  # asyncio logs every callback that holds the event loop over 100 ms
        env["PYTHONASYNCIODEBUG"] = "1"
    program = ["-c", WITHOUT_PRECHECK] if without_precheck else ["-m", "avatarbot.cli"]
    return subprocess.Popen(
        [sys.executable, *program, "--config", str(config), *args],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL,
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop_process(process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_problems(log_path: Path) -> list[str]:
    """ERROR / CRITICAL lines and tracebacks in a process log."""
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line for line in lines if re.search(r"\b(ERROR|CRITICAL)\b|Traceback", line)]


def cpu_seconds(process: subprocess.Popen) -> tuple[float, float]:
    """CPU time of the bot itself, and of the child processes it ran (ffmpeg, espeak-ng)."""
    try:
        times = psutil.Process(process.pid).cpu_times()
    except psutil.Error:
        return float("nan"), float("nan")
    return times.user + times.system, times.children_user + times.children_system


def tree_cpu_seconds(process: subprocess.Popen) -> float:
    """CPU time of a process and its living children (the worker's render processes)."""
    try:
        root = psutil.Process(process.pid)
        return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return float("nan")


def rss_mib(process: subprocess.Popen) -> float:
    try:
        return psutil.Process(process.pid).memory_info().rss / 2**20
    except psutil.Error:
        return float("nan")


async def sample_until(stop: asyncio.Event, started: float, bot: subprocess.Popen, redis_url: str,
                       samples: Samples) -> None:  # fmt: skip
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        while not stop.is_set():
            samples.at.append(time.monotonic() - started)
            samples.gpu_llen.append(await client.llen("gpu"))
            samples.jobs_queued.append(await client.zcard("avatarbot:queue"))
            samples.rss_mib.append(rss_mib(bot))
            samples.load1.append(os.getloadavg()[0])
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)
    finally:
        await client.aclose()


# --- Discord ---------------------------------------------------------------------------------------------
class DiscordLoad:
    """Users of one Discord server: /animate with a voice note, /animate with text, voice replies."""

    name = "discord"
    MIX = (("/animate photo+voice", 0.4), ("/animate photo+text", 0.3), ("voice reply to a photo", 0.3))

    def __init__(self, inputs: Inputs, user_count: int):
        from tests.fake_discord import FakeDiscord

        self.inputs = inputs
        self.fake = FakeDiscord(token=TOKEN_DISCORD)
        self.user_count = user_count
        self.users = []
        self.photo_messages: dict[str, dict] = {}
        self.voice_taken: Counter = Counter()
        self.by_interaction: dict[str, Sent] = {}
        self.by_message: dict[str, Sent] = {}

    async def start(self) -> None:
        await self.fake.start()

    async def close(self) -> None:
        await self.fake.close()

    def config_section(self) -> str:
        f = self.fake
        return (
            "[discord]\n"
            f'token = "{TOKEN_DISCORD}"\n'
            f'api_base = "{f.api_base}"\n'
            f'gateway_url = "{f.gateway_url}"\n'
            f"sync_guilds = [{f.guild_id}]\n"
            'cdn_hosts = ["127.0.0.1"]\n'
        )

    def bot_command(self) -> tuple[str, ...]:
        return ("discord",)

    def ready(self) -> bool:
        return bool(self.fake.commands.get(self.fake.guild_id)) and any(s.ready for s in self.fake._sockets)

    async def prepare_users(self) -> None:
        """Each user has posted one photo before the load (the voice replies answer it)."""
        for number in range(self.user_count):
            user = self.fake.add_user(f"user{number}")
            self.users.append(user)
            photo = self.fake.add_attachment(self.inputs.photo_jpeg, "me.jpg", "image/jpeg", width=256, height=256)
            self.photo_messages[user.id] = await self.fake.post_message(user, attachments=[photo])

    async def warm_up(self, rounds: int = 3) -> None:
        """A user outside the measurement sends recordings too short to use: the bot downloads,
        decodes and checks them (loading its media libraries) and refuses, using no quota."""
        user = self.fake.add_user("warm-up")
        pending = []
        for _ in range(rounds):
            photo = self.fake.add_attachment(self.inputs.photo_jpeg, "me.jpg", "image/jpeg", width=256, height=256)
            short = self.fake.add_attachment(self.inputs.too_short_note, "short.ogg", "audio/ogg", duration_secs=0.15)
            pending.append(
                await self.fake.slash_command(user, "animate", {}, attachments={"photo": photo, "voice": short})
            )
        await self.fake.wait_for(lambda: all(i.followups for i in pending), 60, "warm-up answers")

    def _voice(self, user_id: str, filename: str, *, voice_message: bool) -> dict:
        data, seconds = self.inputs.voice_notes[self.voice_taken[user_id] % len(self.inputs.voice_notes)]
        self.voice_taken[user_id] += 1
        return self.fake.add_attachment(data, filename, "audio/ogg", duration_secs=seconds,
                                        voice_message=voice_message)  # fmt: skip

    async def send(self, index: int, kind: str, user_number: int) -> Sent:
        fake, user = self.fake, self.users[user_number]
        if kind == "voice reply to a photo":
            voice = self._voice(user.id, "voice-message.ogg", voice_message=True)
            sent_at = time.monotonic()
            message = await fake.post_message(user, attachments=[voice], reply_to=self.photo_messages[user.id],
                                              voice_message=True)  # fmt: skip
            sent = Sent(index, kind, user.id, sent_at)
            self.by_message[message["id"]] = sent
            return sent
        photo = fake.add_attachment(self.inputs.photo_jpeg, "me.jpg", "image/jpeg", width=256, height=256)
        if kind == "/animate photo+voice":
            attachments, options = {"photo": photo, "voice": self._voice(user.id, "hello.ogg", voice_message=False)}, {}
        else:
            attachments, options = {"photo": photo}, {"text": f"Hello from user {user_number}, request {index}."}
        interaction = await fake.slash_command(user, "animate", options, attachments=attachments)
        sent = Sent(index, kind, user.id, interaction.created_at)
        self.by_interaction[interaction.id] = sent
        return sent

    def collect(self) -> None:
        """Fill in acks and answers from what the fake recorded."""
        from avatarbot import messages

        followup_times: dict[str, list[float]] = defaultdict(list)  # interaction token -> POST times
        for record in self.fake.requests:
            parts = record.path.split("/")  # "", "webhooks", app, token
            if record.method == "POST" and len(parts) == 4 and parts[1] == "webhooks" and record.status == 200:
                followup_times[parts[3]].append(record.at)
        for interaction_id, sent in self.by_interaction.items():
            interaction = self.fake.interactions[interaction_id]
            sent.ack_at = interaction.callback_at
            answers = []
            if interaction.callback and interaction.callback.get("type") == 4:  # answered at once
                answers.append((interaction.callback.get("data") or {}).get("content") or "")
                sent.answer_at = interaction.callback_at
            elif followup_times.get(interaction.token):
                sent.answer_at = min(followup_times[interaction.token])
            answers += [m.get("content") or "" for m in interaction.followups]
            sent.answers = answers
            sent.accepted = messages.DISCORD_STARTED in answers
        replies: dict[str, list] = defaultdict(list)  # user message id -> [(at, content)]
        for record in self.fake.requests:
            if record.method != "POST" or not record.path.startswith("/channels/") or record.status != 200:
                continue
            reference = (record.json or {}).get("message_reference") or {}
            target = str(reference.get("message_id", ""))
            if target in self.by_message:
                replies[target].append((record.at, (record.json or {}).get("content") or ""))
        for message_id, sent in self.by_message.items():
            answers = sorted(replies.get(message_id, []))
            sent.answer_at = answers[0][0] if answers else None  # no interaction: nothing earlier to see
            sent.answers = [text for _, text in answers]
            sent.accepted = any(text.startswith("Clip for <@") for text in sent.answers)

    def answered(self, sent: Sent) -> bool:
        return bool(sent.answers)

    def notes(self, started: float) -> str:
        return ""

    def call_counts(self) -> Counter:
        """The bot's REST calls by route (ids replaced), e.g. "PATCH /channels/{id}/messages/{id}"."""
        return Counter(f"{r.method} " + re.sub(r"/(\d+|itok-\d+)", "/{id}", r.path) for r in self.fake.requests)


# --- Telegram -----------------------------------------------------------------------------------------------
def _recording_fake_telegram():
    """The tests' fake Bot API, noting when getUpdates first hands out each update."""
    from tests.fake_telegram import FakeTelegram

    class RecordingFakeTelegram(FakeTelegram):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.handed_out: dict[int, float] = {}  # update_id -> monotonic time

        async def _api_getupdates(self, params, files):
            updates = await super()._api_getupdates(params, files)
            now = time.monotonic()
            for update in updates:
                self.handed_out.setdefault(update["update_id"], now)
            return updates

    return RecordingFakeTelegram()


class TelegramLoad:
    """Users each in their own private chat with the bot: voice-note replies to a photo, photos
    captioned `/animate <text>`, `/animate <text>` replying to a photo.

    Private chats, because Telegram lets a bot send only ~20 messages a minute into one group
    (the bot's rate limiter waits that out): 1,000 requests a minute in a few groups would
    measure Telegram's flood limit, not the bot."""

    name = "telegram"
    MIX = (("voice note replying to a photo", 0.4), ("photo captioned /animate text", 0.3),
           ("/animate text replying to a photo", 0.3))  # fmt: skip

    def __init__(self, inputs: Inputs, user_count: int):
        self.inputs = inputs
        self.fake = _recording_fake_telegram()
        self.user_count = user_count
        self.users: list[tuple[dict, dict]] = []  # (user, private chat)
        self.photo_messages: dict[int, dict] = {}
        self.voice_taken: Counter = Counter()
        self.by_update: dict[int, tuple[Sent, int, int]] = {}  # update id -> (sent, chat id, message id)

    async def start(self) -> None:
        await self.fake.start()

    async def close(self) -> None:
        await self.fake.stop()

    def config_section(self) -> str:
        return (
            "[telegram]\n"
            f'token = "{self.fake.token}"\n'
            f'base_url = "{self.fake.base_url}"\n'
            f'base_file_url = "{self.fake.base_file_url}"\n'
        )

    def bot_command(self) -> tuple[str, ...]:
        return ("telegram",)

    def ready(self) -> bool:
        return bool(self.fake.calls_to("getUpdates"))

    def _send(self, chat: dict, user: dict, **kwargs) -> tuple[dict, int]:
        message = self.fake.send(chat, user, **kwargs)
        return message, self.fake._updates[-1]["update_id"]

    async def prepare_users(self) -> None:
        """Each user has sent the bot one photo before the load (the replies answer it)."""
        for number in range(self.user_count):
            user = self.fake.user(number + 1, first_name=f"User{number}")
            chat = self.fake.private_chat(user)
            self.users.append((user, chat))
            self.photo_messages[user["id"]], _ = self._send(chat, user, photo=self.inputs.photo_jpeg)
        # The bot answers a lone photo in a private chat with a hint: wait for those.
        await self.fake.wait_for("sendMessage", timeout=60, count=self.user_count)

    async def warm_up(self, rounds: int = 3) -> None:
        """A user outside the measurement sends recordings too short to use: decoded, refused."""
        user = self.fake.user(10**5, first_name="WarmUp")
        chat = self.fake.private_chat(user)
        photo, _ = self._send(chat, user, photo=self.inputs.photo_jpeg)
        for _ in range(rounds):  # one at a time: the quota counts requests still being checked
            before = len(self.fake.calls_to("editMessageText"))
            self._send(chat, user, voice=self.inputs.too_short_note, voice_duration=1, reply_to=photo)
            # Answered at once, and that answer edited into the refusal once decoded.
            await self.fake.wait_for("editMessageText", timeout=60, count=before + 1)

    async def send(self, index: int, kind: str, user_number: int) -> Sent:
        user, chat = self.users[user_number]
        photo_message = self.photo_messages[user["id"]]
        if kind == "voice note replying to a photo":
            data, seconds = self.inputs.voice_notes[self.voice_taken[user["id"]] % len(self.inputs.voice_notes)]
            self.voice_taken[user["id"]] += 1
            message, update_id = self._send(chat, user, voice=data, voice_duration=max(1, round(seconds)),
                                            reply_to=photo_message)  # fmt: skip
        elif kind == "photo captioned /animate text":
            message, update_id = self._send(
                chat,
                user,
                photo=self.inputs.photo_jpeg,
                caption=f"/animate Hello from user {user_number}, request {index}.",
            )
        else:
            message, update_id = self._send(chat, user, text=f"/animate Hi, user {user_number} here, take {index}.",
                                            reply_to=photo_message)  # fmt: skip
        sent = Sent(index, kind, str(user["id"]), time.monotonic())  # replaced by getUpdates' time
        self.by_update[update_id] = (sent, chat["id"], message["message_id"])
        return sent

    def collect(self) -> None:
        from avatarbot import messages

        replies: dict[tuple[int, int], list] = defaultdict(list)  # request -> [(time, text)]
        reply_to: dict[tuple[int, int], tuple[int, int]] = {}  # the bot's reply -> the request
        edits = []
        for call in self.fake.calls:
            if call.status != 200:
                continue
            if call.method == "editMessageText":
                edits.append(call)
                continue
            if call.method != "sendMessage":
                continue
            reply = call.params.get("reply_parameters") or {}
            message_id = reply.get("message_id") or call.params.get("reply_to_message_id")
            if message_id is not None:
                request = (int(call.params["chat_id"]), int(message_id))
                replies[request].append((call.at, call.params.get("text") or ""))
                reply_to[(request[0], int(call.result["message_id"]))] = request
        for call in edits:  # the first answer edited into a refusal, or into the job's status
            request = reply_to.get((int(call.params["chat_id"]), int(call.params["message_id"])))
            if request is not None:
                replies[request].append((call.at, call.params.get("text") or ""))
        accepted_words = (messages.queued(1).split("—")[0].strip(), "Preparing", "Rendering", "Encoding")
        for update_id, (sent, chat_id, message_id) in self.by_update.items():
            handed_out = self.fake.handed_out.get(update_id)
            if handed_out is not None:
                sent.sent_at = handed_out
            answers = sorted(replies.get((chat_id, message_id), []))
            words = [(at, text) for at, text in answers if text != messages.TELEGRAM_CHECKING]
            sent.ack_at = answers[0][0] if answers and handed_out is not None else None
            sent.answer_at = words[0][0] if words and handed_out is not None else None
            sent.answers = [text for _, text in words]
            sent.accepted = any(text.startswith(accepted_words) for text in sent.answers)

    def answered(self, sent: Sent) -> bool:
        return bool(sent.answers)

    def call_counts(self) -> Counter:
        return Counter(call.method for call in self.fake.calls)

    def notes(self, started: float) -> str:
        """How close the bot ran to Telegram's ~30 messages/s limit, which the bot's rate limiter
        enforces on every call that names a chat (messages, edits, deletions, chat actions)."""
        per_second = Counter(int(c.at - started) for c in self.fake.calls if "chat_id" in c.params and c.at >= started)
        if not per_second:
            return ""
        busiest = max(per_second.values())
        seconds = [per_second.get(i, 0) for i in range(max(per_second) + 1)]
        saturated = sum(1 for n in seconds if n >= 28)
        return (
            f"Calls that count against Telegram's 30/s limit: {sum(seconds)} in {len(seconds)} s, busiest second "
            f"{busiest}, {saturated} seconds at 28 or more."
        )


# --- the run -------------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    platform: str
    sent: list[Sent]
    samples: Samples
    jobs: list
    settings: object
    bot_rss_idle: float
    bot_rss_start: float
    bot_rss_end_of_load: float
    bot_rss_drained: float
    load_seconds: float
    drain_seconds: float
    bot_problems: list[str]
    bot_problems_while_running: int  # the rest came while the bot shut down
    worker_problems: list[str]
    bot_exit: int | None
    worker_exit: int | None
    undelivered: int
    mix: tuple
    histories: dict  # job id -> [(state, time)] after queued
    calls: Counter  # the bot's calls to the platform, by method / route
    notes: str
    cpu: tuple  # (bot CPU s, its children's CPU s, wall s) from the first request to the last answer
    other_cpu: tuple  # (worker incl. its render processes, this bench process: fake server + users) CPU s


async def run_platform(load, args, folder: Path) -> RunResult:
    from avatarbot.settings import load_settings
    from avatarbot.tasks.jobs import JobStore
    from avatarbot.tasks.redis_server import start_redis_server

    rng = random.Random(args.seed)
    redis = start_redis_server(folder / "redis")
    await load.start()
    config = write_config(folder, redis.url, load.config_section())
    worker = start_process(config, folder / "worker.log", "worker", "--concurrency", "1")
    bot = start_process(config, folder / "bot.log", *load.bot_command(), loop_debug=args.loop_debug,
                        without_precheck=args.without_precheck)  # fmt: skip
    stop_sampling = asyncio.Event()
    try:
        deadline = time.monotonic() + BOT_READY_S
        while not load.ready():
            if bot.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the bot did not start; see {folder / 'bot.log'}:\n" + (folder / "bot.log").read_text()
                )
            await asyncio.sleep(0.1)
        await load.prepare_users()
        await asyncio.sleep(2.0)  # let the bot settle (it ignores the photo posts)
        rss_idle = rss_mib(bot)
        await load.warm_up()
        rss_start = rss_mib(bot)

        kinds = [name for name, _ in load.MIX]
        weights = [weight for _, weight in load.MIX]
        times = arrival_times(args.requests, args.seconds, rng)
        plan = [(t, rng.choices(kinds, weights)[0], rng.randrange(args.users)) for t in times]

        samples = Samples()
        cpu_before = cpu_seconds(bot)
        others_before = (tree_cpu_seconds(worker), psutil.Process().cpu_times())
        started = time.monotonic()
        sampler = asyncio.create_task(sample_until(stop_sampling, started, bot, redis.url, samples))
        sent: list[Sent] = []
        for index, (at, kind, user_number) in enumerate(plan):
            delay = started + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent.append(await load.send(index, kind, user_number))
        load_seconds = time.monotonic() - started
        print(f"[{load.name}] {len(sent)} requests sent in {load_seconds:.1f} s; waiting for answers", flush=True)

        deadline = time.monotonic() + ANSWER_WAIT_S
        while time.monotonic() < deadline:
            load.collect()
            if all(load.answered(s) for s in sent):
                break
            await asyncio.sleep(0.5)
        rss_end_of_load = rss_mib(bot)
        cpu_after = cpu_seconds(bot)
        others_after = (tree_cpu_seconds(worker), psutil.Process().cpu_times())
        worker_cpu = others_after[0] - others_before[0]
        bench_cpu = sum(others_after[1][:2]) - sum(others_before[1][:2])
        answer_seconds = time.monotonic() - started

        store = JobStore.from_settings(load_settings(config))
        drain_started = time.monotonic()
        deadline = drain_started + DRAIN_WAIT_S
        while time.monotonic() < deadline:
            jobs = await asyncio.to_thread(store.list_jobs, load.name)
            if all(job.delivered for job in jobs):
                break
            await asyncio.sleep(1.0)
        drain_seconds = time.monotonic() - drain_started
        await asyncio.sleep(2.0)  # last status edits
        rss_drained = rss_mib(bot)
        stop_sampling.set()
        await sampler
        load.collect()
        jobs = await asyncio.to_thread(store.list_jobs, load.name)
        problems_while_running = len(log_problems(folder / "bot.log"))
        histories = {job.id: await asyncio.to_thread(store.history, job.id) for job in jobs}
        store.redis.close()
        settings = load_settings(config)
    finally:
        stop_sampling.set()
        bot_exit = bot.poll()  # None: still running, as it should be
        worker_exit = worker.poll()
        # In a thread: the fake server lives on this event loop and must answer the bot's last
        # calls while it shuts down (PTB confirms its updates with one more getUpdates).
        await asyncio.to_thread(stop_process, bot)
        await asyncio.to_thread(stop_process, worker)
        await load.close()
        redis.stop()
    return RunResult(
        platform=load.name, sent=sent, samples=samples, jobs=jobs, settings=settings,
        bot_rss_idle=rss_idle, bot_rss_start=rss_start, bot_rss_end_of_load=rss_end_of_load, bot_rss_drained=rss_drained,
        load_seconds=load_seconds, drain_seconds=drain_seconds,
        bot_problems=log_problems(folder / "bot.log"), bot_problems_while_running=problems_while_running, worker_problems=log_problems(folder / "worker.log"),
        bot_exit=bot_exit, worker_exit=worker_exit,
        undelivered=sum(1 for job in jobs if not job.delivered), mix=load.MIX, histories=histories,
        calls=load.call_counts(), notes=load.notes(started),
        cpu=(cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1], answer_seconds),
        other_cpu=(worker_cpu, bench_cpu),
    )  # fmt: skip


# --- checks and the report ---------------------------------------------------------------------------------
def refusal_reason(answers: list[str]) -> str:
    text = " ".join(answers)
    if "in the making" in text:
        return "concurrent (2 at a time)"
    if "clips in the last hour" in text and text.count("This chat") == 0:
        return "user per hour"
    if "This chat has made" in text:
        return "server per hour"
    return "other: " + (answers[0][:60] if answers else "no answer")


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))  # an end before a start at the same instant  # fmt: skip
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def analyse(result: RunResult) -> dict:
    jobs_settings = result.settings.jobs
    acks = [s.ack_s for s in result.sent if s.ack_s is not None]
    per_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"ack": [], "answer": [], "accepted": []})
    for s in result.sent:
        if s.ack_s is not None:
            per_kind[s.kind]["ack"].append(s.ack_s)
        if s.answer_s is not None:
            per_kind[s.kind]["answer"].append(s.answer_s)
            if s.accepted:
                per_kind[s.kind]["accepted"].append(s.answer_s)
    accepted = [s for s in result.sent if s.accepted]
    refused = [s for s in result.sent if not s.accepted and s.answers]
    unanswered = [s for s in result.sent if not s.answers]
    reasons = Counter(refusal_reason(s.answers) for s in refused)
    per_user = Counter(job.requester.user_id for job in result.jobs)
    per_server = Counter(job.requester.server_id for job in result.jobs if job.requester.server_id)
    overlap_by_user = {}
    by_user = defaultdict(list)
    for job in result.jobs:
        # Active (what the concurrency quota counts) from creation until its outcome was known.
        ended = [at for state, at in result.histories.get(job.id, []) if state not in ("running", "encoding")]
        by_user[job.requester.user_id].append((job.created_at, min(ended, default=time.time())))
    for user, intervals in by_user.items():
        overlap_by_user[user] = max_overlap(intervals)
    over = [user for user, peak in overlap_by_user.items() if peak > jobs_settings.max_concurrent_per_user]
    over_detail = [
        f"user {user}: "
        + "; ".join(
            f"{job.id} created {job.created_at:.3f} {result.histories.get(job.id)}"
            for job in result.jobs
            if job.requester.user_id == user
        )
        for user in over[:3]
    ]
    states = Counter(job.state for job in result.jobs)
    return {
        "acks": acks,
        "acks_expected": sum(1 for s in result.sent if result.platform != "discord" or s.kind.startswith("/")),
        "per_kind": per_kind,
        "accepted": len(accepted),
        "jobs": len(result.jobs),
        "refused": len(refused),
        "unanswered": len(unanswered),
        "reasons": reasons,
        "max_per_user": max(per_user.values(), default=0),
        "max_per_server": max(per_server.values(), default=0),
        "max_concurrent": max(overlap_by_user.values(), default=0),
        "states": states,
        "over_detail": over_detail,
        "quota_ok": (
            max(per_user.values(), default=0) <= jobs_settings.max_per_user_per_hour
            and max(per_server.values(), default=0) <= jobs_settings.max_per_server_per_hour
            and max(overlap_by_user.values(), default=0) <= jobs_settings.max_concurrent_per_user
        ),
        "limits": (
            jobs_settings.max_concurrent_per_user,
            jobs_settings.max_per_user_per_hour,
            jobs_settings.max_per_server_per_hour,
        ),  # fmt: skip
    }


def _ms(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q) * 1000:.0f}" if values else "-"


def report(result: RunResult, args) -> str:
    a = analyse(result)
    s = result.samples
    acks = a["acks"]
    p99 = float(np.percentile(acks, 99)) if acks else float("inf")
    if len(acks) < a["acks_expected"]:
        p99 = float("inf")  # an unacknowledged request fails the target whatever the others did
    quarter = min(range(len(s.at)), key=lambda i: abs(s.at[i] - result.load_seconds / 4)) if s.at else None
    rss_quarter = s.rss_mib[quarter] if quarter is not None else float("nan")
    rss_growth = result.bot_rss_drained - rss_quarter
    ack_meaning = (
        "Discord: INTERACTION_CREATE sent -> interaction callback received (voice replies have no interaction)"
        if result.platform == "discord"
        else (
            "Telegram: update handed out by getUpdates -> the bot's first sendMessage replying to it "
            '("Got it! Checking…", edited later into the refusal or the status)'
        )
    )
    concurrent, per_hour, per_server = a["limits"]
    variant = " (bot WITHOUT the quota pre-check: the state before the fix)" if args.without_precheck else ""
    lines = [
        f"### {result.platform}: {len(result.sent)} requests, {args.users} users, {args.seconds:.0f} s{variant}",
        "",
        "Mix: "
        + ", ".join(f"{name} {weight:.0%}" for name, weight in result.mix)
        + f"; sent in {result.load_seconds:.1f} s (Poisson arrivals, seed {args.seed}).",
        "",
        f"Acknowledgement = {ack_meaning}. First answer = the first words about the request: the "
        "refusal, the status message (Telegram: the edit saying either), or (Discord interactions) the follow-up. Accepted requests "
        "are answered only after their inputs are downloaded, decoded and stored.",
        "",
        "| request | n | ack p50 ms | ack p95 ms | ack p99 ms | ack max ms | answer p50 ms | answer p99 ms "
        "| answer max ms | accepted: answer p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    everything = {"ack": acks, "answer": [x.answer_s for x in result.sent if x.answer_s is not None],
                  "accepted": [x.answer_s for x in result.sent if x.answer_s is not None and x.accepted]}  # fmt: skip
    for kind, values in [("all", everything)] + [(k, a["per_kind"][k]) for k, _ in result.mix]:
        ack, answer, accepted = values["ack"], values["answer"], values["accepted"]
        lines.append(
            f"| {kind} | {len(answer)} | {_ms(ack, 50)} | {_ms(ack, 95)} | {_ms(ack, 99)} | {_ms(ack, 100)} "
            f"| {_ms(answer, 50)} | {_ms(answer, 99)} | {_ms(answer, 100)} | {_ms(accepted, 50)} / {_ms(accepted, 99)} |"
        )
    lines += [
        "",
        "| check | result |",
        "|---|---|",
        f"| ack p99 <= {ACK_TARGET_S:.0f} s | {'**pass**' if p99 <= ACK_TARGET_S else '**FAIL**'} ({p99 * 1000:.0f} ms; "
        f"{len(acks)} of {a['acks_expected']} acknowledged) |",
        f"| accepted / refused / unanswered | {a['accepted']} / {a['refused']} / {a['unanswered']} "
        f"(job records: {a['jobs']}) |",
        "| refusals by reason | " + ", ".join(f"{k}: {v}" for k, v in a["reasons"].most_common()) + " |",
        f"| quotas (limits {concurrent} at a time, {per_hour}/user/h, {per_server}/server/h) | "
        f"{'**pass**' if a['quota_ok'] else '**FAIL**'}: max {a['max_concurrent']} at a time, "
        f"{a['max_per_user']} per user, {a['max_per_server'] or 'no servers (private chats)'} per server |",
        f"| every request answered | {'**pass**' if a['unanswered'] == 0 else '**FAIL**'} |",
        f"| Celery `gpu` queue (LLEN), max / at end | {max(s.gpu_llen, default=0)} / {s.gpu_llen[-1] if s.gpu_llen else '-'} |",
        f"| jobs waiting (job queue), max / at end | {max(s.jobs_queued, default=0)} / {s.jobs_queued[-1] if s.jobs_queued else '-'} |",
        f"| jobs by state after drain ({result.drain_seconds:.0f} s) | "
        + ", ".join(f"{k}: {v}" for k, v in sorted(a["states"].items()))
        + f"; undelivered {result.undelivered} |",
        f"| bot RSS: idle / after warm-up / at 1/4 of the load / end of load / drained | {result.bot_rss_idle:.0f} / "
        f"{result.bot_rss_start:.0f} / {rss_quarter:.0f} / {result.bot_rss_end_of_load:.0f} / "
        f"{result.bot_rss_drained:.0f} MiB (growth from 1/4 of the load to drained: {rss_growth:+.1f} MiB) |",
        f"| errors | bot log: {result.bot_problems_while_running} ERROR/traceback lines while running, "
        f"{len(result.bot_problems) - result.bot_problems_while_running} while shutting down; worker log: "
        f"{len(result.worker_problems)}; bot {'running' if result.bot_exit is None else f'EXITED {result.bot_exit}'}, "
        f"worker {'running' if result.worker_exit is None else f'EXITED {result.worker_exit}'} |",
        f"| bot CPU, first request to last answer ({result.cpu[2]:.0f} s) | {result.cpu[0]:.1f} s in the bot process "
        f"({result.cpu[0] / result.cpu[2]:.0%} of a core), {result.cpu[1]:.1f} s in its ffmpeg / espeak-ng children; "
        f"meanwhile the worker used {result.other_cpu[0]:.1f} s, the fake server + users {result.other_cpu[1]:.1f} s |",
        f"| load average (1 min) during the run | min {min(s.load1, default=0):.1f}, "
        f"median {np.median(s.load1) if s.load1 else 0:.1f}, max {max(s.load1, default=0):.1f} |",
        "",
        "Over time (every ~10 s): t s / gpu LLEN / jobs waiting / bot RSS MiB: "
        + "; ".join(
            f"{s.at[i]:.0f}/{s.gpu_llen[i]}/{s.jobs_queued[i]}/{s.rss_mib[i]:.0f}" for i in range(0, len(s.at), 10)
        ),
        "",
        "Bot calls to the platform: "
        + ", ".join(f"{name} {count}" for name, count in result.calls.most_common(8))
        + ". "
        + result.notes,
        "",
    ]
    for detail in a["over_detail"]:
        lines.append(f"    over the concurrency quota: {detail[:1500]}")
    for problem in (result.bot_problems + result.worker_problems)[:10]:
        lines.append(f"    {problem[:200]}")
    return "\n".join(lines)


def machine() -> str:
    from avatarbot.tasks.redis_server import find_redis_server

    found = find_redis_server()
    version = "?"
    if found:
        version = subprocess.run([str(found[0]), "--version"], capture_output=True, text=True).stdout.split()[2]
        version = version.removeprefix("v=")
    return (
        f"Machine: {os.cpu_count()} CPU cores shared with other work, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform_info.python_version()}, Redis {version} on loopback. Bot and worker are separate "
        "processes (`avatarbot discord|telegram`, `avatarbot worker --concurrency 1`, lite engine, fast quality, "
        "offline TTS); the fake platform server and the simulated users share the bench process."
    )


async def main_async(args) -> list[str]:
    sections = []
    platforms = ["discord", "telegram"] if args.platform == "both" else [args.platform]
    with tempfile.TemporaryDirectory(prefix="avatarbot-load-") as tmp:
        inputs = make_inputs(Path(tmp))
        for name in platforms:
            folder = Path(tmp) / name
            folder.mkdir()
            if name == "discord":
                load = DiscordLoad(inputs, args.users)
            else:
                load = TelegramLoad(inputs, args.users)
            result = await run_platform(load, args, folder)
            text = report(result, args)
            print(text, flush=True)
            sections.append(text)
            if args.keep_logs:
                for log_name in ("bot.log", "worker.log"):
                    shutil.copy(folder / log_name, Path(args.keep_logs) / f"{name}-{log_name}")
    return sections


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", choices=["discord", "telegram", "both"], default="both")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--loop-debug",
        action="store_true",
        help="run the bot in asyncio debug mode: its log names callbacks that block the loop",
    )
    parser.add_argument(
        "--without-precheck",
        action="store_true",
        help="run the bot without the quota pre-check (RequestFlow.check_quota), as before the fix",
    )
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the bot and worker logs here")
    parser.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    if args.keep_logs:
        Path(args.keep_logs).mkdir(parents=True, exist_ok=True)

    sections = asyncio.run(main_async(args))
    report_text = "\n".join(
        [f"## Bots under load (`bench/load.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
         machine(), "", *sections]
    )  # fmt: skip
    if args.record:
        with (REPO / "bench" / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write("\n" + report_text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
