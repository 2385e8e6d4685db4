"""The speech-recognition targets of issue 22; prints JSON.

Usage: python benchmarks/speech_targets.py [ctc] [encoder] [finetune] [loso] [voices] [whisper] [serve]
    [--data DIR] [--set K=V ...]
(needs ../shared/datasets/free_spoken_digits)

- ctc: the BiLSTM-CTC of examples/speech_digits.yaml trained on digit strings of four speakers, tested on strings of
  two held-out speakers (target: WER <= 5% within 10 minutes of training); metrics.json also holds the zero-shot
  Whisper baseline on the same test strings.
- encoder: examples/speech_digits_encoder.yaml, the same BiLSTM-CTC trained on the frozen encoder of Whisper
  tiny.en instead of log-mel features, on the same strings and voices.
- finetune: examples/speech_digits_whisper.yaml, a bundled Whisper fine-tuned on the same training strings, tested
  on the same held-out voices, beside zero-shot Whisper base.
- loso: the validation that chooses the recipe without touching the test voices: train on three of the four
  training speakers' strings, score on strings of the fourth (`--holdout`, repeatable for a rotation). Unseen
  voices, as in the test, but never nicolas or theo.
- voices: how the WER on one unseen voice (`--holdout`, any of the six) moves as voices are added to training
  (`--train-voices a,b,c`, repeatable: one run per list; the same number of training strings each time). It may
  train on the test voices: it measures the data, it chooses nothing.
- whisper: zero-shot WER of each bundled Whisper model on the held-out speakers' strings (numbers normalised:
  "seven" = "7"), and the real-time factor on them and on one long recording cut by voice activity (target <= 0.3).
- serve: a zero-shot Whisper bundle behind `modelyard serve`, 8 concurrent clients posting to
  /v1/audio/transcriptions: errors, throughput, p50/p99 latency.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from digit_strings import generate  # noqa: E402 - the modelyard-independent generator beside the example

RECORDINGS = ROOT.parent / "shared" / "datasets" / "free_spoken_digits" / "recordings"
TRAIN_SPEAKERS = ["george", "jackson", "lucas", "yweweler"]
TEST_SPEAKERS = ["nicolas", "theo"]
SIZES = {"train": (2000, TRAIN_SPEAKERS, 1), "validation": (200, TRAIN_SPEAKERS, 2), "test": (400, TEST_SPEAKERS, 3)}


def make_data(folder: Path) -> dict[str, Path]:
    """The three manifests (generated once; deterministic by seed)."""
    out = {}
    for split, (count, speakers, seed) in SIZES.items():
        manifest = folder / split / "manifest.csv"
        if not manifest.exists():
            generate(RECORDINGS, folder / split, count, speakers, seed)
        out[split] = manifest
    return out


def make_loso(folder: Path, holdout: str, count: int, voices: list[str] | None = None) -> dict[str, Path]:
    """Train strings of `voices` (default: the three other training speakers), validation strings of `holdout`
    (deterministic)."""
    if voices is None and holdout not in TRAIN_SPEAKERS:
        raise SystemExit(f"--holdout {holdout}: choose one of the training speakers {TRAIN_SPEAKERS}")
    others = voices or [s for s in TRAIN_SPEAKERS if s != holdout]
    if holdout in others:
        raise SystemExit(f"--holdout {holdout} is also a training voice")
    name = f"loso-{holdout}-{count}" if voices is None else f"voices-{holdout}-{count}-{'-'.join(sorted(others))}"
    out = {}
    for split, (n, speakers, seed) in {"train": (count, others, 11), "validation": (200, [holdout], 12)}.items():
        manifest = folder / name / split / "manifest.csv"
        if not manifest.exists():
            generate(RECORDINGS, manifest.parent, n, speakers, seed)
        out[split] = manifest
    return out


def run_loso(
    folder: Path, holdouts: list[str], count: int, overrides: list[str], voices: list[str] | None = None
) -> dict:
    """Validation WER on each held-out speaker and their mean (the test split is the validation one)."""
    import modelyard

    scores = {}
    for holdout in holdouts:
        data = make_loso(folder, holdout, count, voices)
        sets = [f"data.train={data['train']}", *(f"data.{k}={data['validation']}" for k in ("validation", "test"))]
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp) / "bundle"
            model = modelyard.train(
                ROOT / "examples" / "speech_digits.yaml", bundle, [*sets, "model.baseline=null", *overrides]
            )
            metrics = json.loads((model.path / "metrics.json").read_text())
        scores[holdout] = {"validation": metrics["validation"], "intervals": metrics.get("test_intervals")}
        scores[holdout]["train"] = metrics["train"]
    mean = float(np.mean([v["validation"]["wer"] for v in scores.values()]))
    out = {"overrides": overrides, "train_strings": count, "mean_wer": round(mean, 5), "speakers": scores}
    return out | ({"train_voices": voices} if voices else {})


def run_ctc(
    data: dict[str, Path], overrides: list[str], example: str = "speech_digits.yaml", exports: bool = False
) -> dict:
    import modelyard

    sets = [f"data.{k}={v}" for k, v in data.items()] + overrides
    with tempfile.TemporaryDirectory() as tmp:
        model = modelyard.train(ROOT / "examples" / example, Path(tmp) / "bundle", sets)
        metrics = json.loads((model.path / "metrics.json").read_text())
        result = {"overrides": overrides, **{k: metrics[k] for k in ("validation", "test", "baselines", "train")}}
        result["test_intervals"] = metrics.get("test_intervals")
        if exports:
            result["exports"] = {
                name: run_export(model.path, Path(tmp) / name, fmt, quantize, data["test"])
                for name, fmt, quantize in (("onnx", "onnx", None), ("int8", "torch", "int8"))
            }
    return result


def run_export(bundle: Path, output: Path, fmt: str, quantize: str | None, test: Path) -> dict:
    """Parity of an export on the validation strings (as `modelyard export` checks it), then its test WER."""
    import modelyard
    from modelyard.errors import UserError
    from modelyard.export.exporter import export

    try:
        result = export(str(bundle), fmt, quantize, output=output, latency_samples=20)
    except UserError as err:  # the parity check refused it: the reason is the measurement
        return {"refused": str(err)}
    test_metrics = modelyard.load(output).evaluate(test)
    return {"parity": result.report["parity"], "size_mb": result.report["size_mb"], "test": test_metrics}


def _cpu_seconds() -> float:
    """CPU time of this process (all threads): on a shared machine, wall time measures the neighbours too; CPU
    time / 2 is what the same work takes on two idle cores (the `rtf_two_idle_cores` estimates)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_whisper(data: dict[str, Path], names: list[str], limit: int) -> dict:
    import pandas as pd

    from modelyard.data.audio import read_audio
    from modelyard.learners.whisper import WhisperLearner
    from modelyard.metrics.speech import speech_intervals, speech_metrics

    test = pd.read_csv(data["test"]).head(limit)
    test["path"] = [str(data["test"].parent / p) for p in test["audio_path"]]
    long_audio = np.concatenate([read_audio(Path(p))[0] for p in test["path"][:20]])  # ~90 s, one recording
    out = {}
    for name in names:
        learner = WhisperLearner(name, "en", 1)
        learner.model  # noqa: B018 - load (and check) before timing
        cpu0 = _cpu_seconds()
        refs, hyps, audio, compute = learner.transcripts(test)
        cpu_short = _cpu_seconds() - cpu0
        started, cpu0 = time.perf_counter(), _cpu_seconds()
        long_text = learner.transcribe_long([long_audio])[0]
        long_seconds, cpu_long = time.perf_counter() - started, _cpu_seconds() - cpu0
        out[name] = {
            "test": speech_metrics(refs, hyps, audio, compute),
            "rtf_two_idle_cores": round(cpu_short / 2 / audio, 4),
            "intervals": speech_intervals(refs, hyps),
            "long_recording": {
                "seconds": round(long_audio.size / 16000, 1),
                "chunks": len(long_text["segments"]),
                "rtf": round(long_seconds / (long_audio.size / 16000), 4),
                "rtf_two_idle_cores": round(cpu_long / 2 / (long_audio.size / 16000), 4),
                "wer": speech_metrics([" ".join(test["text"][:20])], [long_text["text"]])["wer"],
            },
            "examples": [{"reference": r, "hypothesis": h} for r, h in list(zip(refs, hyps, strict=True))[:5]],
        }
    return {"utterances": len(test), "speakers": TEST_SPEAKERS, "models": out}


def run_serve(data: dict[str, Path], clients: int, requests: int) -> dict:
    """A whisper-tiny.en bundle served by `modelyard serve`; `clients` threads each post `requests` files."""
    import httpx
    import pandas as pd

    import modelyard

    test = pd.read_csv(data["test"]).head(clients * requests)
    files = [(data["test"].parent / p).read_bytes() for p in test["audio_path"]]
    port = 8765
    with tempfile.TemporaryDirectory() as tmp:
        sets = [f"data.{k}={v}" for k, v in data.items()] + [
            "model.backbone=whisper-tiny.en",
            "model.baseline=null",
            "data.max_rows=20",
        ]
        bundle = modelyard.train(ROOT / "examples" / "speech_digits.yaml", Path(tmp) / "b", sets, quiet=True).path
        env = {**os.environ, "MODELYARD_HOME": tmp}
        server = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "serve", str(bundle), "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(240):
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            latencies: list[float] = []
            errors: list[str] = []

            def client(k: int) -> None:
                with httpx.Client(timeout=120) as http:
                    for j in range(requests):
                        body = files[k * requests + j]
                        began = time.perf_counter()
                        r = http.post(
                            f"{url}/v1/audio/transcriptions",
                            files={"file": ("a.wav", body, "audio/wav")},
                            data={"model": "whisper-tiny.en"},
                        )
                        latencies.append(time.perf_counter() - began)
                        if r.status_code != 200:
                            errors.append(f"{r.status_code}: {r.text[:200]}")

            began = time.perf_counter()
            threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - began
        finally:
            server.terminate()
            server.wait(30)
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "throughput_rps": round(len(latencies) / wall, 2),
        "latency_s": {p: round(float(np.percentile(latencies, q)), 3) for p, q in (("p50", 50), ("p99", 99))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["ctc", "whisper", "serve"])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "modelyard-digit-strings")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override for ctc")
    parser.add_argument("--whisper", nargs="+", default=["whisper-base", "whisper-tiny.en"])
    parser.add_argument("--holdout", action="append", default=[], help="loso, voices: held-out speaker(s)")
    parser.add_argument("--loso-strings", type=int, default=1500, help="loso, voices: training strings")
    parser.add_argument("--train-voices", action="append", default=[], help="voices: a,b,c (one run per list)")
    parser.add_argument("--limit", type=int, default=200, help="test strings for the whisper part")
    args = parser.parse_args()
    data = make_data(args.data) if {"ctc", "encoder", "finetune", "whisper", "serve"} & set(args.parts) else {}
    results: dict = {}
    if "ctc" in args.parts:
        results["ctc"] = run_ctc(data, args.overrides)
    if "encoder" in args.parts:
        results["encoder"] = run_ctc(data, args.overrides, "speech_digits_encoder.yaml", exports=True)
    if "finetune" in args.parts:
        results["finetune"] = run_ctc(data, args.overrides, "speech_digits_whisper.yaml")
    if "loso" in args.parts:
        results["loso"] = run_loso(args.data, args.holdout or ["yweweler"], args.loso_strings, args.overrides)
    if "voices" in args.parts:
        if not args.holdout or not args.train_voices:
            raise SystemExit("voices: give --holdout and at least one --train-voices list")
        results["voices"] = [
            run_loso(args.data, args.holdout, args.loso_strings, args.overrides, voices.split(","))
            for voices in args.train_voices
        ]
    if "whisper" in args.parts:
        results["whisper"] = run_whisper(data, args.whisper, args.limit)
    if "serve" in args.parts:
        results["serve"] = run_serve(data, clients=8, requests=4)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
