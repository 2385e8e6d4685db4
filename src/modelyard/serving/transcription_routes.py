"""POST /v1/audio/transcriptions, shaped like OpenAI's: the official `openai` client's
`client.audio.transcriptions.create(model=..., file=...)` works against `base_url=http://HOST:PORT/v1`.

A multipart upload (`file`, `model`, optional `language`, `prompt`, `response_format` json | text | verbose_json |
srt | vtt, `temperature`, `timestamp_granularities[]` of segment only) goes through the same service as
/v1/predict: batched, timed out, logged (the log keeps a few numbers about the audio and the transcript, never the
recording). Long recordings are cut by voice activity.
"""

from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse

from modelyard.learners.speech_common import Utterance
from modelyard.serving.dependencies import get_service
from modelyard.serving.errors import ServingError
from modelyard.serving.schemas import ERROR_RESPONSES
from modelyard.serving.security import require_api_key
from modelyard.serving.service import ModelService

router = APIRouter(
    prefix="/v1/audio", tags=["audio"], dependencies=[Depends(require_api_key)], responses=ERROR_RESPONSES
)
Format = Literal["json", "text", "verbose_json", "srt", "vtt"]


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}{separator}{millis % 1000:03d}"


def _subtitles(segments: list[dict[str, Any]], kind: str) -> str:
    separator = "," if kind == "srt" else "."
    blocks = [
        (f"{i}\n" if kind == "srt" else "")
        + f"{_timestamp(s['start'], separator)} --> {_timestamp(s['end'], separator)}\n{s['text']}\n"
        for i, s in enumerate((s for s in segments if s["text"]), 1)
    ]
    return ("WEBVTT\n\n" if kind == "vtt" else "") + "\n".join(blocks)


def _verbose(answer: dict[str, Any], language: str | None) -> dict[str, Any]:
    segments = [
        {
            "id": i,
            "seek": 0,
            "start": s["start"],
            "end": s["end"],
            "text": s["text"],
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": 0.0,
            "compression_ratio": 1.0,
            "no_speech_prob": 0.0,
        }
        for i, s in enumerate(answer["segments"])
    ]
    return {
        "task": "transcribe",
        "language": answer.get("language") or language,  # what the model decoded as; null when unknown, never a guess
        "duration": answer["duration"],
        "text": answer["text"],
        "segments": segments,
    }


@router.post("/transcriptions", summary="Transcribe an audio file (OpenAI-compatible)")
async def transcriptions(
    http: Request,
    file: UploadFile = File(description="the recording: WAV, FLAC, OGG or MP3, any rate and channel count"),
    model: str | None = Form(None, description="accepted for compatibility; this server serves one model"),
    language: str | None = Form(None, max_length=16, description="ISO-639-1 code, e.g. en or zh (Whisper)"),
    prompt: str | None = Form(None, max_length=2000, description="text to steer spelling and style (Whisper)"),
    response_format: Format = Form("json"),
    temperature: float = Form(
        0.0, ge=0, le=1, description="accepted; Whisper decodes at 0 and samples higher only to retry an unsure text"
    ),
    timestamp_granularities: list[str] | None = Form(
        None, alias="timestamp_granularities[]", description="segment only (verbose_json); word is refused"
    ),
    service: ModelService = Depends(get_service),
) -> Any:
    learner = service.model.learner
    if not hasattr(learner, "transcribe_long"):
        raise ServingError(404, "this model does not transcribe audio; use /v1/predict")
    if unknown := sorted(set(timestamp_granularities or []) - {"segment"}):
        raise ServingError(
            422, f"timestamp_granularities[]: {', '.join(unknown)} timestamps are not produced; use segment"
        )
    if language:
        try:
            language = learner.language_hint(language)
        except ValueError as err:
            raise ServingError(422, f"language: {err}") from None
    data = await file.read()
    hints = {k: v for k, v in {"language": language, "prompt": prompt}.items() if v}
    # decoded within --timeout; stopped if the client leaves first
    predictions, _ = await service.predict([Utterance(data, hints)], 1, names=["file"], receive=http.receive)
    answer = predictions[0]
    if response_format == "text":
        return PlainTextResponse(answer["text"])
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(_subtitles(answer["segments"], response_format))
    if response_format == "verbose_json":
        return JSONResponse(_verbose(answer, language))
    return JSONResponse({"text": answer["text"]})
