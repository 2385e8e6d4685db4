"""Transcribed audio for speech recognition: a CSV/JSONL manifest (`audio_path,text[,speaker]`) or a
LibriSpeech-style folder (`SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt` lines `UTTERANCE-ID transcript` beside
`UTTERANCE-ID.flac`), every file checked by `data.audio.verify`; plus the vocabulary statistics of the report.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelyard.config import FormatOptions
from modelyard.data.audio import EXTENSIONS, AudioReport, list_table, verify
from modelyard.data.readers import read_table
from modelyard.errors import DataError


def list_librispeech(root: Path) -> pd.DataFrame:
    """Rows (path, file, text, speaker) from every `*.trans.txt` under `root`; the speaker is the utterance id's
    first dash-separated part (LibriSpeech: `84-121123-0000`)."""
    rows = []
    for listing in sorted(root.rglob("*.trans.txt")):
        audio = {p.stem: p for p in listing.parent.iterdir() if p.suffix.lower() in EXTENSIONS}
        for number, line in enumerate(listing.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            key, _, text = line.strip().partition(" ")
            path = audio.get(key, listing.parent / f"{key}.flac")  # a missing file is named by verify
            rows.append(
                {
                    "path": str(path.absolute()),
                    "file": path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path),
                    "text": text.strip(),
                    "speaker": key.split("-")[0],
                    "source_line": f"{listing.name}:{number}",
                }
            )
    if not rows:
        raise DataError(
            f"{root}: no transcripts found",
            "give a CSV/JSONL manifest with audio_path and text columns, or a LibriSpeech-style folder with "
            "*.trans.txt files (one `UTTERANCE-ID transcript` per line beside UTTERANCE-ID.flac)",
        )
    return pd.DataFrame(rows).drop(columns="source_line")


def read_transcribed(
    path: str,
    audio_column: str,
    text_column: str,
    speaker_column: str | None,
    fmt: FormatOptions,
    max_rows: int | None,
    max_seconds: float,
    report: AudioReport,
) -> tuple[pd.DataFrame, list[str]]:
    """(path, file, text[, speaker], sha256, seconds, ...) of the usable recordings, and warnings; bad files are
    skipped and named in `report`, rows without a transcript are dropped with a warning."""
    source = Path(path)
    warnings: list[str] = []
    if source.is_dir():
        frame, root = list_librispeech(source), source
    else:
        columns = {"text": text_column}
        raw, _ = read_table(source, fmt, max_rows)
        if speaker_column and speaker_column in raw.columns:
            columns["speaker"] = speaker_column
        frame, root = list_table(source, audio_column, columns, fmt, max_rows), source.parent
        if len(frame) < len(raw):
            warnings.append(
                f"{source}: {len(raw) - len(frame)} rows without an audio path, transcript or speaker dropped"
            )
    if max_rows:
        frame = frame.head(max_rows)
    blank = frame["text"].astype(str).str.strip() == ""
    if blank.any():
        warnings.append(
            f"{source}: {int(blank.sum())} rows without a transcript dropped (first: {frame['file'][blank].iloc[0]})"
        )
        frame = frame[~blank].reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{source}: no rows with both an audio file and a transcript")
    return verify(frame, root, report, max_seconds), warnings


def duration_summary(seconds: pd.Series) -> dict[str, float]:
    if seconds.empty:
        return {"hours": 0.0}
    p = np.percentile(seconds, [5, 50, 95])
    return {
        "hours": round(float(seconds.sum()) / 3600, 3),
        "p5": round(float(p[0]), 2),
        "median": round(float(p[1]), 2),
        "p95": round(float(p[2]), 2),
        "max": round(float(seconds.max()), 2),
    }


def vocabulary_report(splits: dict[str, pd.DataFrame], lexicon: list[str], clean) -> dict[str, Any]:
    """Characters and words of the training transcripts, and how much of validation/test (and of the domain
    lexicon) they cover: a word never heard in training can only be spelled letter by letter."""
    train_text = [clean(t) for t in splits["train"]["text"]]
    chars = Counter(ch for t in train_text for ch in t)
    words = Counter(w for t in train_text for w in t.split())
    out: dict[str, Any] = {"characters": len(chars), "words": len(words), "coverage": {}}
    for name in ("validation", "test"):
        texts = [clean(t) for t in splits[name]["text"]]
        tokens = [w for t in texts for w in t.split()]
        if not tokens:
            continue
        unseen_words = [w for w in tokens if w not in words]
        unseen_chars = sorted({ch for t in texts for ch in t if ch not in chars})
        out["coverage"][name] = {
            "word_coverage": round(1 - len(unseen_words) / len(tokens), 4),
            "unseen_words": [w for w, _ in Counter(unseen_words).most_common(10)],
            "unseen_characters": unseen_chars[:20],
        }
    if lexicon:
        terms = [w for term in lexicon for w in clean(term).split()]
        out["lexicon"] = {
            "terms": len(lexicon),
            "words_in_training_transcripts": round(sum(w in words for w in terms) / max(len(terms), 1), 4),
        }
    return out
