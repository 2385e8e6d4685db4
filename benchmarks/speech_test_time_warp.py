"""Would test-time vocal-tract-length normalisation help the from-scratch BiLSTM-CTC on a voice it never heard?

Trains the example recipe on three training speakers' digit strings (as `speech_targets.py loso`), keeps the
bundle, then transcribes the held-out speaker's strings with the mel axis warped by each factor of a grid (the
training-time `MelWarp`, fixed) and prints JSON: the WER at each fixed factor (the best of them is an oracle), and
with the factor chosen per recording by the model's own confidence (mean best log-probability per frame, or
negative entropy), as test-time VTLN would choose it.

    python benchmarks/speech_test_time_warp.py --holdout jackson [--bundle DIR] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import speech_targets  # the LOSO splits and the example's path (imported after the path is set)

GRID = np.round(np.arange(0.82, 1.181, 0.03), 2)
CONFIDENCE: dict[str, Callable[[np.ndarray], float]] = {
    "best_log_prob": lambda lp: float(lp.max(1).mean()),
    "negative_entropy": lambda lp: float((np.exp(lp) * lp).sum(1).mean()),
}


def warped_log_probs(bundle: Path, audio: list[np.ndarray]) -> tuple[object, dict[float, list[np.ndarray]]]:
    """The bundle's learner and its (frames, vocab) log-probabilities for every recording at every factor."""
    from modelyard.learners.speech_ctc import CTCSpeechLearner

    learner = CTCSpeechLearner.load(next(p.parent for p in bundle.rglob("speech_model.json")))
    warp = learner.module.warp
    out = {}
    for factor in GRID:
        warp.forward = lambda x, f=float(factor): warp.warp(x, torch.full((x.shape[0],), f))
        out[float(factor)] = learner.log_probs(audio)
    return learner, out


def main() -> None:
    import modelyard
    from modelyard.data.audio import load_audio
    from modelyard.metrics.speech import speech_metrics
    from modelyard.models.ctc_decoder import decode

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--holdout", required=True, help="the training speaker left out")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "modelyard-digit-strings")
    parser.add_argument("--loso-strings", type=int, default=2000)
    parser.add_argument("--bundle", type=Path, help="reuse (or keep) the trained bundle here")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    data = speech_targets.make_loso(args.data, args.holdout, args.loso_strings)
    bundle = args.bundle or Path(tempfile.mkdtemp()) / "bundle"
    if not bundle.exists():
        sets = [f"data.train={data['train']}", *(f"data.{k}={data['validation']}" for k in ("validation", "test"))]
        example = speech_targets.ROOT / "examples" / "speech_digits.yaml"
        modelyard.train(example, bundle, [*sets, "model.baseline=null", *args.overrides])
    rows = pd.read_csv(data["validation"])
    audio = [load_audio(data["validation"].parent / p) for p in rows["audio_path"]]
    references = rows["text"].tolist()
    learner, log_probs = warped_log_probs(bundle, audio)

    def wer(chosen: list[float]) -> float:
        hyps = [
            decode(log_probs[f][i], learner.alphabet, learner.options, learner.lm, learner.prefixes)
            for i, f in enumerate(chosen)
        ]
        return speech_metrics(references, hyps)["wer"]

    result = {"holdout": args.holdout, "bundle": str(bundle), "overrides": args.overrides}
    result["fixed_factor_wer"] = {str(f): wer([f] * len(audio)) for f in log_probs}
    for name, confidence in CONFIDENCE.items():
        chosen = [max(log_probs, key=lambda f, i=i: confidence(log_probs[f][i])) for i in range(len(audio))]
        result[f"per_recording_by_{name}"] = {"wer": wer(chosen), "mean_factor": round(float(np.mean(chosen)), 3)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
