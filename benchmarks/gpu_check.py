"""GPU readiness in one run (a few minutes on one GPU): every torch task trains briefly through `modelyard.train`
and answers through the FastAPI app, and one training run goes through an NCCL process group.

Each check prints one JSON line; the last line is a summary; the exit code is 1 when a check failed. A check
proves, from forward hooks on every module, that the parameters and the inputs were on the chosen device, that
training forwards ran under bf16 autocast (on CUDA), that the DataLoader pinned its batches (on CUDA), and that
the served model answered from that device. Models are built here (random tiny Llama, from-scratch CNN, GPT,
transformer, LSTM, MLP, multi-label transformer, a detector on a random trunk, a BiLSTM-CTC recogniser), so
nothing needs a network or a model hub.

    PYTHONPATH=src python3 benchmarks/gpu_check.py --output gpu_check.json   # on a GPU machine
    .venv/bin/python benchmarks/gpu_check.py --device cpu                    # the same checks on the CPU
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


class Probe:
    """Global forward pre-hook + pin_memory counter: what the models actually saw, recorded per mode."""

    def __init__(self, device_type: str) -> None:
        import torch
        from torch.utils.data._utils import pin_memory as pin_module

        self.torch, self.device_type = torch, device_type
        self.reset()
        torch.nn.modules.module.register_module_forward_pre_hook(self._hook)
        original = pin_module.pin_memory

        def counted(data: Any, device: Any = None) -> Any:
            self.pinned += 1
            return original(data, device)

        pin_module.pin_memory = counted  # the DataLoader looks it up here at every batch

    def reset(self) -> None:
        self.seen: dict[str, dict[str, Any]] = {
            mode: {"forwards": 0, "inputs": set(), "params": set(), "autocast": set()} for mode in ("train", "eval")
        }
        self.pinned = 0

    def _hook(self, module: Any, args: tuple) -> None:
        torch = self.torch
        if next(module.parameters(), None) is None:
            return  # preprocessing modules without weights (torchvision transforms) run on the CPU by design
        seen = self.seen["train" if module.training else "eval"]
        seen["forwards"] += 1
        seen["inputs"].update(a.device.type for a in args if isinstance(a, torch.Tensor))
        seen["params"].update(p.device.type for p in module.parameters(recurse=False))
        on = torch.is_autocast_enabled(self.device_type)
        seen["autocast"].add(str(torch.get_autocast_dtype(self.device_type)).removeprefix("torch.") if on else "off")

    def report(self) -> dict[str, Any]:
        return {
            mode: {k: sorted(v) if isinstance(v, set) else v for k, v in seen.items()}
            for mode, seen in self.seen.items()
        } | {"pinned_batches": self.pinned}


def _write_yaml(folder: Path, config: dict[str, Any]) -> Path:
    import yaml

    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _png(rgb: tuple[int, int, int]) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 48), rgb).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# --- one function per task: (config path, what to send to the server) ---


def text_classification(folder: Path) -> tuple[Path, str, dict]:
    import pandas as pd

    train = pd.read_csv(EXAMPLES / "data" / "banking77" / "train.csv")
    intents = sorted(train["category"].unique())[:4]
    train[train["category"].isin(intents)].groupby("category").head(40).to_csv(folder / "train.csv", index=False)
    config = {
        "name": "gpu-text",
        "task": "text_classification",
        "data": {"train": "train.csv", "text_column": "text", "label_column": "category"},
        "model": {"backbone": "scratch-transformer", "max_length": 32},
        "train": {"max_steps": 20, "batch_size": 32, "early_stopping": None},
    }
    return _write_yaml(folder, config), "/v1/predict", {"inputs": ["my card was declined at the shop"]}


def image_classification(folder: Path) -> tuple[Path, str, dict]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        (folder / "data" / label).mkdir(parents=True)
        for i in range(24):
            pixels = rng.integers(0, 80, (40, 48, 3), dtype=np.uint8)
            pixels[..., channel] += 150
            Image.fromarray(pixels).save(folder / "data" / label / f"{i}.png")
    config = {
        "name": "gpu-image",
        "task": "image_classification",
        "data": {"train": "data", "split": {"validation": 0.2, "test": 0.2}},
        "model": {"backbone": "cnn-scratch", "image_size": 32},
        "train": {"max_steps": 20, "batch_size": 8, "early_stopping": None},
    }
    return _write_yaml(folder, config), "/v1/predict", {"inputs": [_png((230, 30, 40))], "top_k": 2}


def gpt(folder: Path) -> tuple[Path, str, dict]:
    text = (EXAMPLES / "data" / "tiny_shakespeare" / "input.txt").read_text(encoding="utf-8")[:20_000]
    (folder / "corpus.txt").write_text(text, encoding="utf-8")
    config = {
        "name": "gpu-gpt",
        "task": "text_generation",
        "data": {"train": "corpus.txt", "split": {"validation": 0.1, "test": 0.1}},
        "model": {"backbone": "gpt-scratch", "layers": 2, "heads": 2, "hidden_size": 64, "context": 64},
        "train": {"max_steps": 30, "batch_size": 16, "learning_rate": 3e-3, "early_stopping": None},
    }
    return _write_yaml(folder, config), "/v1/completions", {"prompt": "ROMEO:", "max_tokens": 8, "temperature": 0}


def lora_chat(folder: Path) -> tuple[Path, str, dict]:
    """LoRA on a random two-layer Llama saved as a local Hugging Face folder (the real peft wiring, no download)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from modelyard.models import lm_tokenizer

    examples = [
        {"messages": [{"role": "user", "content": f"colour of {w}?"}, {"role": "assistant", "content": c}]}
        for w, c in [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black")] * 4
    ]
    torch.manual_seed(0)
    base = folder / "tiny-llama"
    text = "".join(json.dumps(e) for e in examples) + "<|system|><|user|><|assistant|>"
    eot = lm_tokenizer.EOT
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=lm_tokenizer.train([text], "char"), eos_token=eot, pad_token=eot
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|endoftext|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    sizes = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **sizes,
    )
    LlamaForCausalLM(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    (folder / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    run = {
        "name": "gpu-lora",
        "task": "text_generation",
        "data": {"train": "train.jsonl", "split": {"validation": 0.25, "test": 0.0}},
        "model": {
            "backbone": str(base),
            "lora": {"r": 4, "alpha": 8},
            "generation": {"max_new_tokens": 6, "temperature": 0},
        },
        "train": {"max_steps": 10, "batch_size": 4, "early_stopping": None},
    }
    request = {"messages": [{"role": "user", "content": "colour of sky?"}], "max_tokens": 6, "temperature": 0}
    return _write_yaml(folder, run), "/v1/chat/completions", request


def forecasting(folder: Path) -> tuple[Path, str, dict]:
    import numpy as np
    import pandas as pd

    t = np.arange(240)
    values = 50 + 0.2 * t + 8 * np.sin(2 * np.pi * t / 7) + np.random.default_rng(0).normal(0, 0.5, len(t))
    days = pd.date_range("2023-01-01", periods=len(t), freq="D").strftime("%Y-%m-%d")
    pd.DataFrame({"day": days, "sales": values.round(2)}).to_csv(folder / "sales.csv", index=False)
    config = {
        "name": "gpu-forecast",
        "task": "forecasting",
        "data": {"train": "sales.csv", "time_column": "day", "target_column": "sales"},
        "model": {"horizon": 7, "context_length": 14, "hidden_size": 16, "layers": 1},
        "train": {"max_steps": 30, "batch_size": 32, "early_stopping": None},
    }
    return _write_yaml(folder, config), "/v1/predict", {"inputs": [{"history": [50.0] * 14, "horizon": 3}]}


def tabular_mlp(folder: Path) -> tuple[Path, str, dict]:
    import pandas as pd

    frame = pd.read_csv(EXAMPLES / "data" / "credit_default" / "credit_default_2000.csv")
    frame.to_csv(folder / "credit.csv", index=False)
    config = {
        "name": "gpu-tabular",
        "task": "tabular_classification",
        "data": {"train": "credit.csv", "target_column": "default.payment.next.month"},
        "model": {"backbone": "mlp"},
        "train": {"max_steps": 30, "batch_size": 64, "early_stopping": None},
    }
    first = frame.drop(columns=[config["data"]["target_column"]]).iloc[0]
    row = {k: v.item() if hasattr(v, "item") else v for k, v in first.items() if pd.notna(v)}
    return _write_yaml(folder, config), "/v1/predict", {"rows": [row]}


def audio(folder: Path) -> tuple[Path, str, dict]:
    recordings = EXAMPLES / "data" / "spoken_digits" / "recordings"
    config = {
        "name": "gpu-audio",
        "task": "audio_classification",
        "data": {
            "train": str(recordings),
            "filename_pattern": r"^(?P<label>\d)_(?P<speaker>[a-z]+)_",
            "split": {"validation": 0.2, "test": 0.0},
        },
        "model": {"widths": [8, 16], "n_mels": 32, "clip_seconds": 0.6},
        "train": {"max_steps": 20, "batch_size": 16, "early_stopping": None},
    }
    clip = next(recordings.glob("*.wav")).read_bytes()
    return _write_yaml(folder, config), "/v1/predict", {"inputs": [base64.b64encode(clip).decode()]}


def multilabel(folder: Path) -> tuple[Path, str, dict]:
    import pandas as pd

    pd.read_csv(EXAMPLES / "data" / "goemotions" / "train.csv").head(300).to_csv(folder / "train.csv", index=False)
    config = {
        "name": "gpu-multilabel",
        "task": "multilabel_classification",
        "data": {"train": "train.csv", "text_column": "text", "label_column": "labels", "label_separator": "|"},
        "model": {"backbone": "scratch-transformer", "max_length": 32},
        "train": {"max_steps": 20, "batch_size": 16, "early_stopping": None},
    }
    return _write_yaml(folder, config), "/v1/predict", {"inputs": ["thank you so much, this made my day"]}


def object_detection(folder: Path) -> tuple[Path, str, dict]:
    mini = EXAMPLES / "data" / "raccoon_mini"
    config = {
        "name": "gpu-detection",
        "task": "object_detection",
        "data": {"annotations": str(mini), "train": str(mini / "train.txt"), "test": str(mini / "test.txt"),
                 "classes": ["raccoon"], "split": {"validation": 0.2, "seed": 0}},
        "model": {"trunk": "random", "image_size": 64, "min_score": 0.0},
        "train": {"max_steps": 10, "batch_size": 8, "early_stopping": None},
    }  # fmt: skip
    image = base64.b64encode((mini / "images" / "raccoon-106.jpg").read_bytes()).decode()
    return _write_yaml(folder, config), "/v1/predict", {"inputs": [image]}


def speech_recognition(folder: Path) -> tuple[Path, str, dict]:
    import csv

    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    recordings = sorted((EXAMPLES / "data" / "spoken_digits" / "recordings").glob("*.wav"))
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio_path", "text"])
        writer.writerows([str(path), words[int(path.name[0])]] for path in recordings)
    config = {
        "name": "gpu-speech",
        "task": "speech_recognition",
        "data": {"train": "manifest.csv", "audio_column": "audio_path", "text_column": "text",
                 "split": {"validation": 0.2, "test": 0.0}},
        "model": {"backbone": "ctc-lstm", "hidden_size": 32, "conv_channels": 32, "layers": 1, "baseline": None},
        "train": {"max_steps": 10, "batch_size": 8, "early_stopping": None},
    }  # fmt: skip
    clip = base64.b64encode(recordings[0].read_bytes()).decode()
    return _write_yaml(folder, config), "/v1/predict", {"inputs": [clip]}


BUILDERS: dict[str, Callable[[Path], tuple[Path, str, dict]]] = {
    "text_classification": text_classification,
    "image_classification": image_classification,
    "gpt": gpt,
    "lora_chat": lora_chat,
    "forecasting": forecasting,
    "tabular_mlp": tabular_mlp,
    "audio": audio,
    "multilabel": multilabel,
    "object_detection": object_detection,
    "speech_recognition": speech_recognition,
}
TASKS = tuple(BUILDERS)


def _problems(record: dict[str, Any], device: str) -> list[str]:
    """What the recorded forwards say went wrong for a run that should train and serve on `device`."""
    train, serve = record["train_probe"], record["serve_probe"]
    found = []
    if not train["train"]["forwards"]:
        found.append("no training forward was seen")
    if train["train"]["params"] != [device] or train["train"]["inputs"] != [device]:
        found.append(f"training ran with params on {train['train']['params']}, inputs on {train['train']['inputs']}")
    if device == "cuda":
        if train["train"]["autocast"] != ["bfloat16"]:
            found.append(f"training autocast was {train['train']['autocast']}, not bfloat16")
        if not train["pinned_batches"]:
            found.append("no batch went through pin_memory")
    if not serve["eval"]["forwards"] or serve["eval"]["params"] != [device]:
        found.append(f"serving ran on {serve['eval']['params'] or 'no module'} ({serve['eval']['forwards']} forwards)")
    if record["status"] != 200 or not record["ready"]:
        found.append(f"server answered {record['status']} (ready: {record['ready']}): {record['answer'][:200]}")
    return found


def check(name: str, probe: Probe, device: str, work: Path) -> dict[str, Any]:
    import torch
    from fastapi.testclient import TestClient

    import modelyard
    from modelyard.serving.app import create_app
    from modelyard.serving.settings import ServeSettings

    folder = work / name
    folder.mkdir()
    config, route, request = BUILDERS[name](folder)
    probe.reset()
    start = time.perf_counter()
    model = modelyard.train(config, output=folder / "bundle", quiet=True)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    train_probe = probe.report()
    history = [json.loads(line) for line in (model.path / "history.jsonl").read_text().splitlines() if line]
    metrics = json.loads((model.path / "metrics.json").read_text())
    probe.reset()
    with TestClient(create_app(str(model.path), ServeSettings(log_predictions=False))) as client:
        ready = client.get("/readyz").status_code == 200
        response = client.post(route, json=request)
    record = {
        "check": name,
        "task": model.manifest["task"],
        "device": device,
        "train_seconds": round(seconds, 2),
        "steps": metrics.get("train", {}).get("steps") or (history[-1].get("step") if history else None),
        "precision": metrics.get("train", {}).get("precision"),
        "train_probe": train_probe,
        "serve_probe": probe.report(),
        "ready": ready,
        "status": response.status_code,
        "answer": response.text[:300],
    }
    return record


def nccl_child(device: str) -> dict[str, Any]:
    """Inside a process that torchrun-style variables make rank 0 of 1: train through the loop, report the group."""
    import torch
    import torch.distributed as dist

    import modelyard

    with tempfile.TemporaryDirectory() as tmp:
        config, _, _ = forecasting(Path(tmp))
        modelyard.train(config, output=Path(tmp) / "bundle", quiet=True)
        record = {"initialized": dist.is_initialized(), "world_size": None, "backend": None, "all_reduce": None}
        if dist.is_initialized():
            record.update(world_size=dist.get_world_size(), backend=dist.get_backend())
            value = torch.ones(1, device=device if device == "cpu" else f"cuda:{torch.cuda.current_device()}")
            dist.all_reduce(value)
            record["all_reduce"] = value.item()
    return record


def nccl(device: str) -> dict[str, Any]:
    """A fresh process (Accelerate's state is per process) with RANK/WORLD_SIZE/LOCAL_RANK set as torchrun sets
    them: world size 1, since one GPU is one NCCL rank; `--nproc N` on N GPUs uses the same code path."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--device", device, "--nccl-child"], env=env, capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    record = json.loads(lines[-1]) if done.returncode == 0 and lines else {"error": done.stderr[-1500:]}
    record = {"check": "nccl", "device": device, "seconds": round(time.perf_counter() - start, 2), **record}
    expected = "nccl" if device == "cuda" else "gloo"
    if "error" in record:
        record["problems"] = ["the child failed"]
    elif record["backend"] != expected or record["all_reduce"] != 1.0:
        record["problems"] = [f"backend {record['backend']}, all_reduce {record['all_reduce']}"]
    else:
        record["problems"] = []
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--only", nargs="*", choices=(*TASKS, "nccl"), help="run only these checks")
    parser.add_argument("--output", type=Path, help="also write every record to this JSON file")
    parser.add_argument("--nccl-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", MODELYARD_TRACKING="off", MODELYARD_DEVICE=args.device)
    os.environ.setdefault("MODELYARD_HOME", tempfile.mkdtemp(prefix="gpu-check-home-"))
    if args.nccl_child:
        print(json.dumps(nccl_child(args.device)))
        return 0
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device is visible; run with --device cpu"}))
        return 1
    environment = {
        "check": "environment",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
        "bf16_supported": torch.cuda.is_bf16_supported() if args.device == "cuda" else None,
        "nccl": ".".join(map(str, torch.cuda.nccl.version())) if args.device == "cuda" else None,
    }
    print(json.dumps(environment), flush=True)
    probe = Probe(args.device)
    records: list[dict[str, Any]] = [environment]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for name in args.only or (*TASKS, "nccl"):
            if name == "nccl":
                record = nccl(args.device)
            else:
                try:
                    record = check(name, probe, args.device, Path(tmp))
                    record["problems"] = _problems(record, args.device)
                except Exception as error:  # one task failing must not hide the others' results
                    record = {"check": name, "device": args.device, "problems": [f"{type(error).__name__}: {error}"]}
                    record["traceback"] = traceback.format_exc()[-2000:]
            records.append(record)
            print(json.dumps(record), flush=True)
    failed = [r["check"] for r in records[1:] if r["problems"]]
    summary = {"check": "summary", "device": args.device, "seconds": round(time.perf_counter() - started, 1)}
    summary |= {"passed": [r["check"] for r in records[1:] if not r["problems"]], "failed": failed}
    records.append(summary)
    print(json.dumps(summary), flush=True)
    if args.output:
        args.output.write_text(json.dumps(records, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
