"""Loading pretrained causal LMs offline: a bundled GGUF (dequantised once, then cached) or a local HF folder.

Dequantising SmolLM2's GGUF takes ~20 s; the float weights are cached as safetensors under
MODELYARD_HOME/cache/causal-lm so every later load is a plain `from_pretrained` of a folder.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modelyard.errors import ModelNotFoundError
from modelyard.fsutil import replace_dir
from modelyard.home import cache_dir, convert_once, offline
from modelyard.models import catalog

log = logging.getLogger(__name__)


def _cached_folder(name: str) -> Path:
    """The float copy of a bundled GGUF model, converted on first use."""
    gguf = catalog.locate(name)
    stat = gguf.stat()
    target = cache_dir("causal-lm") / f"{name}-{stat.st_size}-{int(stat.st_mtime)}"
    return convert_once(target, lambda entry: _convert(name, gguf, entry))


def _convert(name: str, gguf: Path, target: Path) -> None:
    """Dequantise `gguf` into a float Hugging Face folder at `target`, written whole or not at all."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantising %s once (about 20 s); cached in %s", gguf.name, target)
    with _one_gguf_parse():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None  # the weights are plain floats now; this lets save_pretrained write them
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _add_chat_format(catalog.CATALOG[name], model, tokenizer)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    replace_dir(staging, target)


@contextlib.contextmanager
def _one_gguf_parse() -> Iterator[None]:
    """transformers parses a GGUF file's metadata for each of its loads (the tokenizer's config, the tokenizer, the
    model), and Gemma 3's 262k-token vocabulary takes ~20 s to parse here: the conversion shares one read-only
    reader per file instead."""
    import gguf

    original = gguf.GGUFReader
    readers: dict[str, gguf.GGUFReader] = {}

    def shared(path, mode: str = "r"):
        key = f"{Path(path).resolve()}:{mode}"
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _add_chat_format(entry: catalog.CatalogEntry, model, tokenizer) -> None:
    """A base model's file has no chat template: give it the catalog's, and stop generation at its end of turn."""
    if tokenizer.chat_template is not None or entry.chat_template is None:
        return
    tokenizer.chat_template = entry.chat_template
    if entry.end_of_turn is not None:
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        end_of_turn = tokenizer.convert_tokens_to_ids(entry.end_of_turn)
        model.generation_config.eos_token_id = [*(e for e in eos if e is not None), end_of_turn]


def resolve(backbone: str) -> Path:
    """A catalog name or a local Hugging Face folder -> a folder `from_pretrained` reads offline."""
    offline()
    if backbone in catalog.CATALOG and catalog.CATALOG[backbone].kind == "causal-lm":
        return _cached_folder(backbone)
    if catalog.is_local_hf_dir(backbone):
        return Path(backbone).expanduser().resolve()
    raise ModelNotFoundError(
        f"unknown causal language model '{backbone}'",
        f"use gpt-scratch, one of {', '.join(catalog.names('causal-lm'))}, or a local Hugging Face folder",
    )


def load(backbone: str):
    """(model, tokenizer) in fp32, eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve(backbone)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
    return model.eval(), tokenizer
