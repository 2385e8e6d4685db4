"""The server's --timeout covers decoding a request's audio, a request carries at most --max-audio-seconds of it,
and a transcription that timed out is abandoned, leaving the model to the next requests."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from modelyard.learners.speech_common import Transcriber
from modelyard.models import audio_features  # noqa: F401 - imported now, not inside the first timed request
from modelyard.serving.errors import ServingError
from modelyard.serving.metrics import ServerMetrics
from modelyard.serving.service import ModelService
from modelyard.serving.settings import ServeSettings


def tone(seconds: float, rate: int = 16_000) -> str:
    """A base64 WAV of a 440 Hz tone with a pause every second, so the VAD cuts it into one-second chunks."""
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) * (t % 1.0 < 0.8)
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode()


class SlowTranscriber(Transcriber):
    """Takes 0.1 s per chunk and counts the chunks it transcribed."""

    max_chunk_seconds = 1.0
    chunks_per_call = 1

    def __init__(self, decode_delay: float = 0.0) -> None:
        self.chunks = 0
        self.decode_delay = decode_delay

    def transcribe(self, batch: list[np.ndarray], hints: list[dict[str, str]] | None = None) -> list[str]:
        time.sleep(0.1)
        self.chunks += len(batch)
        return ["la"] * len(batch)

    def parse_input(self, item):
        time.sleep(self.decode_delay)
        return super().parse_input(item)


def service_for(learner: Transcriber, **settings) -> ModelService:
    model = SimpleNamespace(
        name="speech", task="speech_recognition", learner=learner, manifest={"version": "1"}, predict=learner.predict
    )
    config = ServeSettings(log_predictions=False, drift_interval_s=0, **settings)
    return ModelService(model, config, ServerMetrics())


async def started(service: ModelService) -> ModelService:
    service.start()
    return service


def test_a_timed_out_transcription_is_abandoned_and_the_next_request_is_answered():
    learner = SlowTranscriber()

    async def scenario() -> tuple[int, list[dict]]:
        service = await started(service_for(learner, timeout_s=1.0))
        with pytest.raises(ServingError) as err:
            await service.predict([tone(40)], 1)  # 40 one-second chunks: 4 s of work
        answers, _ = await service.predict([tone(0.5)], 1)
        await service.stop()
        return err.value.status, answers

    began = time.monotonic()
    status, answers = asyncio.run(scenario())
    assert status == 504 and answers[0]["text"] == "la"
    assert learner.chunks < 20 and time.monotonic() - began < 3  # not all 40 chunks before the next answer


def test_decoding_the_inputs_counts_toward_the_timeout():
    async def scenario() -> None:
        service = await started(service_for(SlowTranscriber(decode_delay=1.0), timeout_s=0.2))
        try:
            await service.predict([tone(0.5)], 1)
        finally:
            await service.stop()

    with pytest.raises(ServingError, match=r"longer than 0\.2 s") as err:
        asyncio.run(scenario())
    assert err.value.status == 504


def test_a_request_over_max_audio_seconds_is_a_422_before_anything_is_decoded():
    learner = SlowTranscriber(decode_delay=5.0)  # decoding would blow the timeout: the headers alone decide

    async def scenario() -> None:
        service = await started(service_for(learner, max_audio_seconds=5, timeout_s=2))
        try:
            await service.predict([tone(3, rate=8_000), tone(3, rate=8_000)], 1)
        finally:
            await service.stop()

    with pytest.raises(ServingError, match=r"^inputs: 6 s of audio in one request; the limit is 5 s") as err:
        asyncio.run(scenario())
    assert err.value.status == 422 and learner.chunks == 0


def test_an_unreadable_input_is_named_when_the_request_is_measured():
    async def scenario() -> None:
        service = await started(service_for(SlowTranscriber()))
        try:
            await service.predict([tone(0.5), "bm90IGF1ZGlv"], 1)
        finally:
            await service.stop()

    with pytest.raises(ServingError, match=r"^inputs\.1: unsupported") as err:
        asyncio.run(scenario())
    assert err.value.status == 422
