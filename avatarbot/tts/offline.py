"""espeak-ng: a robotic but dependable voice that needs no network, used when edge-tts can't answer.

espeak-ng runs as a subprocess (Debian/Ubuntu package `espeak-ng`). It writes its WAV to a file in a
temporary folder that is always removed: with `--stdout` it writes a streaming header whose sizes
are placeholders (0x7FFFFFFF), which Python's `wave` module and some decoders take at face value.
Text goes in on stdin, so a message that starts with "-" is spoken, never read as an option.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from avatarbot import messages
from avatarbot.errors import SpeechError
from avatarbot.tts.voices import Voice

ESPEAK_BINARY = "espeak-ng"
ESPEAK_DEFAULT_WPM = 175  # espeak-ng's own default speed in words per minute (`espeak-ng --help`)
# espeak-ng speaks a 500-character message in well under a second; this only guards against a hang.
ESPEAK_TIMEOUT_S = 60.0


def espeak_words_per_minute(rate: float) -> int:
    return round(ESPEAK_DEFAULT_WPM * rate)


class EspeakEngine:
    name = "offline"

    def __init__(self, binary: str = ESPEAK_BINARY):
        self.binary = binary

    async def synthesize(self, text: str, voice: Voice, rate: float = 1.0) -> bytes:
        """WAV audio (22.05 kHz, 16-bit mono) of `text` in `voice.espeak`."""
        program = shutil.which(self.binary)
        if program is None:
            raise SpeechError(
                messages.SPEECH_FAILED,
                detail=f"{self.binary} is not installed (Debian/Ubuntu: apt install espeak-ng)",
            )
        with tempfile.TemporaryDirectory(prefix="avatarbot-tts-") as folder:
            wav_path = Path(folder) / "speech.wav"
            command = [
                program,
                "-v", voice.espeak,
                "-s", str(espeak_words_per_minute(rate)),
                "-b", "1",  # the input is UTF-8
                "-w", str(wav_path),
                "--stdin",
            ]  # fmt: skip
            returncode, stderr = await _run(command, text.encode("utf-8"))
            if returncode != 0 or not wav_path.is_file() or wav_path.stat().st_size == 0:
                raise SpeechError(
                    messages.SPEECH_FAILED,
                    detail=f"espeak-ng failed (exit {returncode}, voice {voice.espeak}): {stderr.strip()}",
                )
            return wav_path.read_bytes()


async def _run(command: list[str], stdin: bytes) -> tuple[int, str]:
    """Run a program to the end without blocking the event loop; never leave it running."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(ESPEAK_TIMEOUT_S):
            _, stderr = await process.communicate(stdin)
    except TimeoutError:
        raise SpeechError(
            messages.SPEECH_FAILED, detail=f"espeak-ng did not finish within {ESPEAK_TIMEOUT_S:g} s"
        ) from None
    finally:
        if process.returncode is None:  # timed out or cancelled
            process.kill()
            await process.wait()
    return process.returncode, stderr.decode("utf-8", "replace")
