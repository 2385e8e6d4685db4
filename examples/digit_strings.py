"""Continuous speech with exact transcripts from the Free Spoken Digit Dataset: digit strings (phone numbers, order
numbers, verification codes) made by joining one speaker's recordings with short random pauses and background noise.

Real human voices, deterministic by seed, independent of modelyard (numpy, scipy and soundfile only).

python examples/digit_strings.py RECORDINGS OUTPUT [--count 2000] [--speakers george,jackson] [--seed 0]

writes OUTPUT/*.wav (8 kHz mono 16-bit, as the source) and OUTPUT/manifest.csv with the columns
`audio_path,text,speaker,kind,digits` (text in words: "four one five"; digits: "415").
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
KINDS = {"verification code": (3, 6), "order number": (6, 8), "phone number": (7, 10)}
NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav$")
RATE = 8000


def index_recordings(folder: Path) -> dict[str, dict[int, list[Path]]]:
    """speaker -> digit -> recordings, from FSDD file names `{digit}_{speaker}_{index}.wav`."""
    found: dict[str, dict[int, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(folder.glob("*.wav")):
        match = NAME.match(path.name)
        if match:
            found[match["speaker"]][int(match["digit"])].append(path)
    return {s: dict(d) for s, d in found.items()}


def trim(samples: np.ndarray, rate: int = RATE, margin_db: float = 30.0) -> np.ndarray:
    """Cut leading and trailing frames more than `margin_db` below the loudest 10 ms frame."""
    hop = rate // 100
    count = max(1, len(samples) // hop)
    energy = np.array([np.sqrt(np.mean(samples[i * hop : (i + 1) * hop] ** 2) + 1e-12) for i in range(count)])
    loud = np.flatnonzero(20 * np.log10(energy / energy.max()) > -margin_db)
    return samples[loud[0] * hop : (loud[-1] + 1) * hop] if loud.size else samples


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink or brown background noise (unit RMS): hiss, room tone or rumble."""
    white = rng.standard_normal(n)
    colour = rng.choice(["white", "pink", "brown"])
    if colour != "white":
        spectrum = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
        spectrum /= np.sqrt(f) if colour == "pink" else f
        white = np.fft.irfft(spectrum, n)
    return white / (np.sqrt(np.mean(white**2)) + 1e-12)


def make_string(
    rng: np.random.Generator,
    recordings: dict[int, list[Path]],
    digits: list[int],
    snr_db: float,
    cache: dict[Path, np.ndarray],
) -> np.ndarray:
    """One speaker's recordings of `digits`, 50-350 ms apart, 100-400 ms of lead-in and tail, noise at `snr_db`."""
    parts = [np.zeros(int(rng.uniform(0.1, 0.4) * RATE))]
    for i, digit in enumerate(digits):
        path = recordings[digit][rng.integers(len(recordings[digit]))]
        if path not in cache:
            samples, rate = sf.read(path, dtype="float64")
            if rate != RATE:
                raise ValueError(f"{path}: {rate} Hz, expected {RATE}")
            cache[path] = trim(samples / (np.max(np.abs(samples)) + 1e-9))
        parts.append(cache[path] * rng.uniform(0.5, 0.9))
        if i < len(digits) - 1:
            parts.append(np.zeros(int(rng.uniform(0.05, 0.35) * RATE)))
    parts.append(np.zeros(int(rng.uniform(0.1, 0.4) * RATE)))
    speech = np.concatenate(parts)
    active = speech[np.abs(speech) > 0.02]
    level = np.sqrt(np.mean(active**2)) if active.size else 0.1
    mixed = speech + noise(rng, speech.size) * level * 10 ** (-snr_db / 20)
    return np.clip(mixed, -1.0, 1.0)


def generate(
    recordings: Path,
    output: Path,
    count: int,
    speakers: list[str] | None = None,
    seed: int = 0,
    snr_db: tuple[float, float] = (10.0, 30.0),
    prefix: str = "",
) -> Path:
    """Write `count` strings of the chosen speakers (all by default) and their manifest; returns the manifest."""
    index = index_recordings(recordings)
    chosen = sorted(speakers or index)
    missing = [s for s in chosen if s not in index or len(index[s]) < 10]
    if missing:
        raise SystemExit(f"{recordings}: no recordings of all ten digits for speakers {missing}")
    rng = np.random.default_rng(seed)
    output.mkdir(parents=True, exist_ok=True)
    cache: dict[Path, np.ndarray] = {}
    rows = []
    kinds = sorted(KINDS)
    for i in range(count):
        speaker = chosen[i % len(chosen)]
        kind = kinds[rng.integers(len(kinds))]
        low, high = KINDS[kind]
        digits = [int(d) for d in rng.integers(0, 10, rng.integers(low, high + 1))]
        audio = make_string(rng, index[speaker], digits, float(rng.uniform(*snr_db)), cache)
        name = f"{prefix}{i:05d}_{speaker}.wav"
        sf.write(output / name, audio, RATE, subtype="PCM_16")
        text = " ".join(WORDS[d] for d in digits)
        rows.append(
            {"audio_path": name, "text": text, "speaker": speaker, "kind": kind, "digits": "".join(map(str, digits))}
        )
    manifest = output / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recordings", type=Path, help="FSDD recordings folder ({digit}_{speaker}_{index}.wav)")
    parser.add_argument("output", type=Path)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--speakers", default="", help="comma-separated; default all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    speakers = [s for s in args.speakers.split(",") if s] or None
    print(generate(args.recordings, args.output, args.count, speakers, args.seed))


if __name__ == "__main__":
    main()
