"""Audio in: any file or request body -> 16 kHz mono float32 numpy, every file checked and the outcome named.

Public API (kept small and stable; speech tasks build on it):
- `read_audio(source, max_seconds=None) -> (samples, AudioInfo)`: a path or bytes -> float32 in [-1, 1] at
  `SAMPLE_RATE`, mono. Raises `AudioError` (a ValueError) whose message starts with the reason: `empty`,
  `video`, `unsupported`, `corrupt`, `too long`. `AudioInfo.notes` says what was found and done (`resampled
  from 8000 Hz`, `downmixed from 2 channels`, `8-bit`, `clipped`, `silent`, `low sample rate`).
- `load_audio(path)` / `decode_audio(data)`: the samples only.
- `audio_stats(samples)`: duration, loudness, SNR estimate and silence share (data report, drift features).
- `frame_energy_db(samples)`: per-frame RMS in dBFS (25 ms frames, 10 ms hop), used by the VAD.
- `list_folder(root, pattern)` / `list_table(path, audio_column, columns, fmt, max_rows)`: listings with columns
  `path` (absolute), `file` (relative, for reports and fingerprints) and the requested ones (`label`, `speaker`,
  `text`, ...). A folder is one subfolder per class, or flat with a file-name regex naming `label`/`speaker`.
- `verify(frame, root, report, max_seconds)`: opens every listed file, skips bad ones (named in the
  `AudioReport`), adds `sha256`, `seconds`, `source_rate`, `channels`, `loudness_db`, `notes`.
- `speaker_splits(frame, split, test_speakers)`: validation/test carved by whole speakers, so no voice is in
  both train and test.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import firwin, resample_poly

from modelyard import cancellation
from modelyard.config import FormatOptions, SplitConfig
from modelyard.data.images import paths_in
from modelyard.data.payloads import payload_bytes
from modelyard.data.readers import read_table, require_columns
from modelyard.errors import DataError
from modelyard.fsutil import escapes, sha256_file

SAMPLE_RATE = 16_000
# A header is checked before anything is decoded: a few KB of compressed silence can claim hours at 384 kHz
# on 64 channels. Studio masters top out at 192 kHz; surround is 7.1 (8 channels).
MIN_RATE, MAX_RATE = 1_000, 192_000
MAX_CHANNELS = 8
BLOCK_FRAMES = 65_536  # frames decoded at a time: 2 MB of float32 at 8 channels
MAX_RATIO_TERMS = 1_000  # resampling up/down factors beyond this are approximated (see `resample`)
EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf"}
SILENT_PEAK_DB = -60.0  # a file whose loudest sample is below this holds nothing to learn from
CLIP_LEVEL = 0.99
CLIP_SHARE = 0.001  # over 0.1% of samples at full scale: audibly clipped
MAX_NAMED = 20
FFMPEG_HINT = "extract the audio first, e.g. `ffmpeg -i FILE -vn -ac 1 -ar 16000 FILE.wav`"


class AudioError(ValueError):
    """A file or request body that cannot be used as audio; the message starts with the short reason."""


@dataclass
class AudioInfo:
    """What the source was and what reading it did (notes such as `resampled from 8000 Hz`)."""

    source_rate: int
    channels: int
    subtype: str
    format: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def _container(head: bytes) -> str | None:
    """Name a video (or audio-in-video) container from its first bytes; libsndfile reads none of them."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "MP4 audio (AAC)" if brand in (b"M4A ", b"M4B ") else "MP4/QuickTime video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska/WebM video"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "AVI video"
    if head.startswith(b"FLV"):
        return "Flash video"
    if head.startswith(b"\x30\x26\xb2\x75"):
        return "ASF/WMV video"
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return "MPEG video"
    if len(head) > 376 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "MPEG transport stream"
    return None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


@functools.lru_cache(maxsize=64)
def _lowpass(up: int, down: int) -> np.ndarray:
    """scipy's own anti-aliasing filter for `resample_poly(up, down)`, designed once per ratio, not per call."""
    fastest = max(up, down)
    return firwin(2 * 10 * fastest + 1, 1.0 / fastest, window=("kaiser", 5.0))


def resample_ratio(samples: np.ndarray, up: int, down: int) -> np.ndarray:
    """Polyphase resampling by up/down (anti-aliased), float32 out."""
    return resample_poly(samples, up, down, window=_lowpass(up, down)).astype(np.float32)


def _ratio(rate: int, target: int) -> Fraction:
    """target/rate, with terms up to MAX_RATIO_TERMS (see `resample`)."""
    ratio = Fraction(target, rate)
    if max(ratio.numerator, ratio.denominator) > MAX_RATIO_TERMS:
        if ratio <= 1:
            return ratio.limit_denominator(MAX_RATIO_TERMS)
        return 1 / (1 / ratio).limit_denominator(MAX_RATIO_TERMS)
    return ratio


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (anti-aliased) between integer rates. Every usual rate is converted exactly (44.1 kHz:
    up 160, down 441); an odd one such as 44,101 Hz would need a filter of 20 x 44,101 taps, so its ratio is
    approximated by one with terms up to MAX_RATIO_TERMS (pitch off by under 0.1%, speed likewise)."""
    if rate == target:
        return samples.astype(np.float32, copy=False)
    ratio = _ratio(rate, target)
    return resample_ratio(samples, ratio.numerator, ratio.denominator)


def read_audio(source: str | Path | bytes, max_seconds: float | None = None) -> tuple[np.ndarray, AudioInfo]:
    """Any audio file or bytes -> (16 kHz mono float32, info). AudioError says why when it cannot be used.
    Decoded block by block (downmixed and resampled as it goes), so memory follows the 16 kHz output, never the
    source's channels and rate; `cancellation.check()` between blocks stops the decoding of an abandoned request."""
    opened, meta = _open(source)
    seconds = meta.frames / meta.samplerate
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(f"too long: {_duration(seconds)} (limit {_duration(max_seconds)}); cut it into shorter clips")
    try:
        with sf.SoundFile(opened) as stream:
            mono, clipped, peak = _decode_mono(stream)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"corrupt: {_short(err)}") from None
    if mono.size == 0:
        raise AudioError("empty: no audio frames")
    rate = meta.samplerate
    info = AudioInfo(rate, meta.channels, meta.subtype, meta.format, mono.size / SAMPLE_RATE)
    if clipped > CLIP_SHARE:
        info.notes.append(f"clipped: {clipped:.1%} of samples at full scale")
    if meta.subtype in ("PCM_U8", "PCM_S8"):
        info.notes.append("8-bit: coarse samples (about 48 dB of dynamic range)")
    if meta.channels > 1:
        info.notes.append(f"downmixed from {meta.channels} channels")
    if rate < 8000:
        info.notes.append(f"low sample rate: {rate} Hz, nothing above {rate // 2} Hz")
    if rate != SAMPLE_RATE:
        info.notes.append(f"resampled from {rate} Hz")
    if peak <= 10 ** (SILENT_PEAK_DB / 20):
        info.notes.append("silent: peak below -60 dBFS")
    return mono, info


def audio_seconds(source: str | Path | bytes) -> float:
    """A file's duration from its header alone (nothing decoded): what a server counts before it decodes.
    AudioError for anything `read_audio` would refuse before decoding."""
    _, meta = _open(source)
    return meta.frames / meta.samplerate


def payload_seconds(item: Any) -> float:
    """Seconds of one request's audio (base64, `data:` URL, bytes, or 16 kHz samples) from its header alone;
    ValueError (an AudioError for the audio itself) when it cannot be used."""
    if isinstance(item, np.ndarray):
        return item.size / SAMPLE_RATE
    return audio_seconds(payload_bytes(item, "audio"))


def _open(source: str | Path | bytes) -> tuple[str | Path | io.BytesIO, Any]:
    """The source ready for libsndfile and its header, checked: not empty, not video, a sane rate and channel
    count (a few KB of compressed silence can claim 64 channels at 384 kHz)."""
    if isinstance(source, bytes):
        head = source[:512]
    else:
        with open(source, "rb") as handle:
            head = handle.read(512)
    if not head:
        raise AudioError("empty: 0 bytes")
    kind = _container(head)
    if kind:
        raise AudioError(f"video: {kind}, not an audio file; {FFMPEG_HINT}")
    opened = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        meta = sf.info(opened)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"unsupported: not a readable audio file ({_short(err)}); use WAV, FLAC, OGG or MP3") from None
    if meta.frames <= 0 or meta.samplerate <= 0:
        raise AudioError("empty: no audio frames")
    if not MIN_RATE <= meta.samplerate <= MAX_RATE:
        raise AudioError(
            f"unsupported: a sample rate of {meta.samplerate:,} Hz (audio files use {MIN_RATE:,} to {MAX_RATE:,})"
        )
    if meta.channels > MAX_CHANNELS:
        raise AudioError(
            f"unsupported: {meta.channels} channels (at most {MAX_CHANNELS}); mix it down first, e.g. "
            "`ffmpeg -i FILE -ac 1 FILE.wav`"
        )
    size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    if (missing := _wav_missing_bytes(head, size)) > 0:
        raise AudioError(f"corrupt: truncated, {missing:,} bytes of the audio its header announces are missing")
    if isinstance(opened, io.BytesIO):
        opened.seek(0)
    return opened, meta


def _wav_missing_bytes(head: bytes, size: int) -> int:
    """How many bytes of a RIFF WAV's `data` chunk lie past the end of the file (libsndfile quietly reads what is
    there); 0 when complete, not a WAV, or the chunk starts beyond `head`."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0
    offset = 12
    while offset + 8 <= len(head):
        chunk, length = head[offset : offset + 4], int.from_bytes(head[offset + 4 : offset + 8], "little")
        if chunk == b"data":
            streamed = length in (0, 0xFFFFFFFF)  # a recorder that never went back to write the length
            return 0 if streamed else length - (size - offset - 8)
        offset += 8 + length + (length & 1)
    return 0


def _decode_mono(stream: sf.SoundFile) -> tuple[np.ndarray, float, float]:
    """(16 kHz mono samples, share of clipped samples, peak of the mono mix) of an open file, read in blocks."""
    resampler = StreamResampler(stream.samplerate)
    pieces, clipped, total, peak = [], 0, 0, 0.0
    for block in stream.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
        cancellation.check()
        if not np.isfinite(block).all():
            raise AudioError("corrupt: the file holds NaN or infinite samples")
        clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
        total += block.size
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1)
        peak = max(peak, float(np.max(np.abs(mono))))
        pieces.append(resampler.feed(mono))
    pieces.append(resampler.finish())
    out = np.concatenate(pieces)
    return np.clip(out, -1.0, 1.0, out=out), clipped / max(total, 1), peak


class StreamResampler:
    """`resample` of a signal that arrives in blocks, with the same result as resampling it whole: each block
    is filtered with enough of its neighbours on both sides for the filter to see what it would have seen."""

    def __init__(self, rate: int, target: int = SAMPLE_RATE) -> None:
        ratio = _ratio(rate, target)
        self.up, self.down = ratio.numerator, ratio.denominator
        reach = 10 * max(self.up, self.down) / self.up + 2  # the filter's half-length, in input samples
        self.context = self.down * math.ceil(reach / self.down)  # whole output periods, so outputs align
        self.history = 0  # samples at the start of `pending` already resampled (context for the next block)
        self.pending = np.zeros(0, np.float32)

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """The output that `samples` (and those before) settle: everything but the last `context` samples."""
        if self.up == self.down:
            return samples.astype(np.float32, copy=False)
        self.pending = np.concatenate([self.pending, samples])
        ready = (self.pending.size - self.history - self.context) // self.down * self.down
        if ready <= 0:
            return np.zeros(0, np.float32)
        window = self.pending[: self.history + ready + self.context]
        out = self._settled(window, self.history, ready)
        self.pending = self.pending[self.history + ready - self.context :]
        self.history = self.context
        return out

    def finish(self) -> np.ndarray:
        """The output of what is left, the signal's end padded with zeros as `resample` pads it."""
        if self.up == self.down or self.pending.size <= self.history:
            return np.zeros(0, np.float32)
        return self._settled(self.pending, self.history, self.pending.size - self.history)

    def _settled(self, window: np.ndarray, skip: int, count: int) -> np.ndarray:
        """The outputs of `window[skip : skip + count]` (`skip` a multiple of `down`)."""
        out = resample_ratio(window, self.up, self.down)
        first = skip * self.up // self.down
        return out[first : first + math.ceil(count * self.up / self.down)]


def _short(err: Exception) -> str:
    text = str(err)
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text


def listed_paths(frame: pd.DataFrame, column: str) -> list[str]:
    """`predict --input` for an audio model: the files a table names in `column` (its `data.audio_column`, as in the
    training manifest), relative ones from the table's folder; a table without that column is an error naming it."""
    if column not in frame.columns:
        raise DataError(
            f"no column '{column}' (data.audio_column) in the input file; it has: {', '.join(map(str, frame.columns))}"
        )
    return paths_in(frame, column)


def load_audio(path: str | Path, max_seconds: float | None = None) -> np.ndarray:
    """A file -> 16 kHz mono float32 samples."""
    return read_audio(Path(path), max_seconds)[0]


def decode_audio(data: bytes, max_seconds: float | None = None) -> np.ndarray:
    """Bytes from a request -> 16 kHz mono float32 samples; AudioError with a plain reason when unusable."""
    return read_audio(data, max_seconds)[0]


def frame_energy_db(
    samples: np.ndarray, rate: int = SAMPLE_RATE, frame_ms: float = 25, hop_ms: float = 10
) -> np.ndarray:
    """RMS of each frame in dBFS (floor -100), as the VAD and the silence statistics see the signal."""
    frame, hop = int(rate * frame_ms / 1000), int(rate * hop_ms / 1000)
    if samples.size < frame:
        samples = np.pad(samples, (0, frame - samples.size))
    count = 1 + (samples.size - frame) // hop
    windows = np.lib.stride_tricks.as_strided(
        samples, shape=(count, frame), strides=(samples.strides[0] * hop, samples.strides[0])
    )
    rms = np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-5))


def audio_stats(samples: np.ndarray, rate: int = SAMPLE_RATE) -> dict[str, float]:
    """Duration (s), loudness (RMS dBFS), SNR estimate (dB: loud frames vs quiet frames) and silence share
    (frames 35 dB under the loudest or below -50 dBFS): what the data report and the drift monitor compare."""
    energy = frame_energy_db(samples, rate)
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    threshold = max(-50.0, float(energy.max()) - 35.0)
    return {
        "duration": round(samples.size / rate, 4),
        "loudness": round(20 * math.log10(max(rms, 1e-5)), 2),
        "snr": round(float(np.percentile(energy, 95) - np.percentile(energy, 10)), 2),
        "silence_share": round(float(np.mean(energy < threshold)), 4),
    }


@dataclass
class AudioReport:
    """What was read, what was skipped and why, and what was done to the kept files (first files named)."""

    files: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_files: list[str] = field(default_factory=list)
    handled: Counter = field(default_factory=Counter)
    handled_files: list[str] = field(default_factory=list)

    def skip(self, name: str, reason: str) -> None:
        self.skipped[reason.split(":")[0]] += 1
        if len(self.skipped_files) < MAX_NAMED * 4:
            self.skipped_files.append(f"{name}: {reason} (skipped)")

    def handle(self, name: str, notes: list[str]) -> None:
        for note in notes:
            kind = note.split(":")[0].split(" from ")[0]
            self.handled[kind] += 1
            if kind not in ("resampled",) and len(self.handled_files) < MAX_NAMED * 2:
                self.handled_files.append(f"{name}: {note} (kept)")

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "kept": self.kept,
            "skipped": dict(self.skipped),
            "skipped_files": self.skipped_files,
            "handled": dict(self.handled),
            "handled_files": self.handled_files,
        }


def check_file(path: Path, root: Path, max_seconds: float | None) -> dict[str, Any]:
    """Everything `validate` needs about one file; raises AudioError with the reason to skip it."""
    if (outside := escapes(path, root)) is not None:
        raise AudioError(f"outside the data folder: a symlink or '..' leads to {outside}")
    resolved = path.resolve()
    if not resolved.is_file():
        raise AudioError("missing: no such file")
    samples, info = read_audio(resolved, max_seconds)
    if any(note.startswith("silent") for note in info.notes):
        raise AudioError("silent: the loudest sample is below -60 dBFS")
    stats = audio_stats(samples)
    return {
        "sha256": sha256_file(resolved),
        "seconds": round(info.seconds, 4),
        "source_rate": info.source_rate,
        "channels": info.channels,
        "loudness_db": stats["loudness"],
        "notes": "; ".join(info.notes),
    }


def _try_check(path: Path, root: Path, max_seconds: float | None) -> dict[str, Any] | str:
    try:
        return check_file(path, root, max_seconds)
    except AudioError as err:
        return str(err)
    except OSError as err:
        return f"unreadable: {err.strerror or err}"


CHECK_COLUMNS = ["sha256", "seconds", "source_rate", "channels", "loudness_db", "notes"]


def verify(frame: pd.DataFrame, root: Path, report: AudioReport, max_seconds: float | None) -> pd.DataFrame:
    """Open every listed file (two threads: libsndfile and resampling release the GIL); keep the good ones."""
    report.files += len(frame)
    paths = [Path(p) for p in frame["path"]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda p: _try_check(p, root, max_seconds), paths))
    rows, keep = [], []
    for (_, row), result in zip(frame.iterrows(), results, strict=True):
        if isinstance(result, str):
            report.skip(row["file"], result)
            continue
        if result["notes"]:
            report.handle(row["file"], result["notes"].split("; "))
        rows.append(result)
        keep.append(row)
    report.kept += len(keep)
    kept = pd.DataFrame(keep, columns=frame.columns).reset_index(drop=True)
    return pd.concat([kept, pd.DataFrame(rows, columns=CHECK_COLUMNS)], axis=1)


def list_folder(root: Path, pattern: str | None = None) -> pd.DataFrame:
    """`root/<class>/<file>` -> rows (path, file, label); with `pattern` (a regex with named groups `label`
    and/or `speaker`, searched in the file name) a flat folder works too, e.g. `^(?P<label>\\d)_(?P<speaker>\\w+?)_`."""
    regex = re.compile(pattern) if pattern else None
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".") and _audio_like(p))
    rows = []
    for path in files:
        relative = path.relative_to(root)
        row: dict[str, Any] = {"path": str(path.absolute()), "file": relative.as_posix()}
        if len(relative.parts) > 1:
            row["label"] = relative.parts[0]
        if regex:
            match = regex.search(path.name)
            if not match:
                raise DataError(
                    f"{path}: the file name does not match data.filename_pattern {pattern!r}",
                    "fix the pattern or move the file out of the data folder",
                )
            row.update({k: v for k, v in match.groupdict().items() if v is not None})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty or "label" not in frame or frame["label"].isna().any():
        raise DataError(
            f"{root}: no labelled audio files",
            "put the files of each class in their own subfolder (train/yes/1.wav, train/no/2.wav), or name "
            "the label in the file names with data.filename_pattern, e.g. '^(?P<label>\\d)_(?P<speaker>\\w+?)_'",
        )
    return frame


def _audio_like(path: Path) -> bool:
    """Files a user put in an audio folder: audio extensions, and anything else that is not obviously a side
    file (README, CSV), so videos and mislabelled files get opened and named rather than silently ignored."""
    suffix = path.suffix.lower()
    return suffix in EXTENSIONS or suffix not in {".txt", ".md", ".csv", ".json", ".jsonl", ".tsv", ".yaml", ".yml"}


def list_table(
    path: Path,
    audio_column: str,
    columns: dict[str, str],
    fmt: FormatOptions,
    max_rows: int | None,
    optional: tuple[str, ...] = (),
    warnings: list[str] | None = None,
) -> pd.DataFrame:
    """A CSV/JSONL of audio paths (relative to the file's folder) -> rows (path, file, *columns); `columns`
    maps output names to config column names, e.g. {"label": "category", "speaker": "speaker_id"}. Rows without
    an audio path (missing or blank) or a value in a column not named in `optional` are dropped (counted in
    `warnings` when given); in an `optional` column a missing or blank cell is NaN and the row is kept."""
    frame, _ = read_table(path, fmt, max_rows)
    required = {"audio_column": audio_column} | {f"{k}_column": v for k, v in columns.items()}
    require_columns(frame, required, str(path))
    named = {"file": audio_column, **columns}
    values = {name: frame[column].map(_text) for name, column in named.items()}
    for name in ("file", *optional):  # a blank cell (CSV) is no value, as null is in JSONL
        values[name] = values[name].where(values[name] != "")
    needed = [name for name in named if name not in optional]
    kept = pd.concat([values[name].notna() for name in needed], axis=1).all(axis=1)
    if warnings is not None and not kept.all():
        why = ", ".join(f"{n} without {named[name]!r}" for name in needed if (n := int(values[name].isna().sum())))
        warnings.append(f"{path}: {int((~kept).sum())} rows dropped ({why})")
    out = pd.DataFrame({name: column[kept] for name, column in values.items()})
    out.insert(0, "path", [str(_absolute(path.parent, f)) for f in out["file"]])
    return out.reset_index(drop=True)


def _absolute(base: Path, name: str) -> Path:
    given = Path(name).expanduser()
    return (given if given.is_absolute() else base / given).absolute()


def _text(value: Any) -> str | None:
    """A cell as stripped text; None for a missing one."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()


def speaker_splits(
    frame: pd.DataFrame,
    split: SplitConfig,
    test_speakers: list[str] | None = None,
    by_recording: str = "data.speaker_column: null",
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Carve test and validation from `frame` by whole speakers (seeded), each the number of speakers whose
    recordings come nearest its configured share (at least one when the share is above 0); `test_speakers` fixes
    the test voices whatever the share. Rows without a speaker stay in train: no voice of theirs can be held out.
    Needs a `speaker` column and at least 2 speakers; `by_recording` is the config change that splits without them,
    named when there is only one."""
    named = frame["speaker"].notna()
    voice = frame["speaker"].astype(str).where(named)
    speakers = sorted(voice[named].unique())
    if len(speakers) < 2:
        raise _one_speaker(speakers, split, bool(test_speakers), by_recording)
    rng = np.random.default_rng(split.seed)
    order = [speakers[i] for i in rng.permutation(len(speakers))]
    counts = voice[named].value_counts()
    chosen: dict[str, list[str]] = {}
    if test_speakers:
        unknown = sorted(set(map(str, test_speakers)) - set(speakers))
        if unknown:
            raise DataError(f"data.test_speakers: unknown speakers {unknown}", f"speakers in the data: {speakers}")
        chosen["test"] = [str(s) for s in test_speakers]
    for name, share in (("test", split.test), ("validation", split.validation)):
        if name not in chosen and share > 0:
            free = [s for s in order if not any(s in v for v in chosen.values())]
            chosen[name] = _nearest_speakers(free[:-1], counts, share * len(frame))
    parts = {name: frame[voice.isin(voices)] for name, voices in chosen.items()}
    parts["train"] = frame[~voice.isin([s for voices in chosen.values() for s in voices])]
    if not parts["train"]["speaker"].notna().any():
        raise DataError("no speaker left for training after holding out test and validation voices")
    notes = [
        f"{name}: speakers {', '.join(voices) or 'none'} held out ({len(parts[name])} recordings, "
        f"{len(parts[name]) / len(frame):.0%} of the data)"
        for name, voices in chosen.items()
    ]
    if unnamed := int((~named).sum()):
        notes.append(f"train: {unnamed} recordings without a speaker kept in train (never held out)")
    empty = frame.iloc[0:0]
    return {k: parts.get(k, empty).reset_index(drop=True) for k in ("train", "validation", "test")}, notes


def _one_speaker(speakers: list[str], split: SplitConfig, fixed_test: bool, by_recording: str) -> DataError:
    """The error for data of one voice (or none): which split needed a voice of its own, and the ways out."""
    held = [
        f"{name} split (data.{'test_speakers' if fixed else f'split.{name}: {share:g}'})"
        for name, share, fixed in (("validation", split.validation, False), ("test", split.test, fixed_test))
        if fixed or share > 0
    ]
    return DataError(
        f"only one speaker ({speakers[0] if speakers else 'none'}): cannot hold out a voice of its own for the "
        + " and the ".join(held),
        "add recordings of more speakers, give the split's own data (data.validation / data.test) or set its share "
        f"to 0, or split by recording: {by_recording}",
    )


def _nearest_speakers(free: list[str], counts: pd.Series, target: float) -> list[str]:
    """The first k of `free` (k >= 1 when any is free) whose recordings add up nearest `target`."""
    if not free:
        return []
    totals = np.cumsum([counts[s] for s in free])
    return free[: int(np.argmin(np.abs(totals - target))) + 1]
