"""Single-stream generation speed with SmolLM2-135M, side by side on this machine: modelyard's KV-cache decoder
with float weights (the old path) and with weight-only int4 weights (`model.decode_weights: int4`, the default),
against llama.cpp on the package's own Q4_1 GGUF when `llama-cpp-python` is installed (it is not a dependency:
it compiles from source for ~10+ minutes here; `pip install llama-cpp-python==0.3.36` first to include it).
Same chat prompt, greedy, exactly `--tokens` new tokens, median of `--repeats` runs; also 8 concurrent streams
through the server's GenerationBatcher with the default weights. Prints JSON, with the load average around it
(the machine is shared: compare numbers taken in one run only).

    python benchmarks/generation_speed.py [--tokens 128] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable

import torch

from modelyard import model_thread
from modelyard.generation.batcher import GenerationBatcher
from modelyard.learners.lora import CausalLMLearner
from modelyard.tasks.text_generation import GenerationModelConfig

QUESTIONS = [
    "What is the capital of France?",
    "Name three colours of the rainbow.",
    "Why is the sky blue?",
    "Give me a tip for learning to cook.",
    "What does a bank teller do?",
    "How many legs does a spider have?",
    "Write one sentence about the sea.",
    "What is two plus two?",
]


def llama_cpp_runner(ids: list[int], tokens: int, threads: int) -> Callable[[], tuple[float, float]] | str:
    """llama.cpp on the same GGUF and prompt token ids, greedy, exactly `tokens` new tokens a run."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return "not measured: llama-cpp-python is not installed (pip install llama-cpp-python==0.3.36)"
    from modelyard.models.catalog import locate

    llm = Llama(model_path=str(locate("smollm2-135m")), n_ctx=512, n_threads=threads, verbose=False)

    def run() -> tuple[float, float]:
        llm.reset()
        start, first = time.perf_counter(), 0.0
        for count, _ in enumerate(llm.generate(ids, temp=0.0, reset=True), start=1):
            first = first or time.perf_counter() - start
            if count == tokens:
                break
        return time.perf_counter() - start, first

    return run


def modelyard_runner(learner: CausalLMLearner, ids: list[int], tokens: int, weights: str):
    """One request through the learner's decoder with `weights`, on the model thread as the server runs it."""

    def decode() -> tuple[float, float]:
        learner.generator.decoder.weights = weights
        start, first = time.perf_counter(), 0.0
        for _ in learner.generator.run([_request(learner, ids, tokens)]):
            first = first or time.perf_counter() - start
        return time.perf_counter() - start, first

    return lambda: model_thread.call(decode)


def _summary(runs: list[tuple[float, float]], tokens: int) -> dict:
    """Wall time from request to last token (prefill included), tokens/s from the median run; and the decoding
    rate alone (the tokens after the first over the time after the first), median over the runs."""
    seconds = [r[0] for r in runs]
    decoding = [(tokens - 1) / (total - first) for total, first in runs]
    return {
        "tokens": tokens,
        "seconds_per_run": [round(s, 2) for s in seconds],
        "tokens_per_second": round(tokens / statistics.median(seconds), 2),
        "first_token_ms": round(1000 * statistics.median(r[1] for r in runs), 1),
        "decode_tokens_per_second": round(statistics.median(decoding), 2),
    }


def concurrent_streams(learner: CausalLMLearner, prompts: list[list[int]], tokens: int) -> dict:
    """As in the server: the batcher hands each batch's decoding to the thread that loaded the model."""
    batcher = GenerationBatcher(learner.generator, max_batch_size=len(prompts), max_wait_ms=20, call=model_thread.call)
    done, counts = threading.Semaphore(0), []

    def sink(event) -> None:
        if getattr(event, "finish_reason", None):
            counts.append(event.completion_tokens)
            done.release()

    start = time.perf_counter()
    for ids in prompts:
        batcher.submit(_request(learner, ids, tokens), sink)
    for _ in prompts:
        done.acquire()
    seconds = time.perf_counter() - start
    batcher.close()
    return {
        "streams": len(prompts),
        "tokens": sum(counts),
        "seconds": round(seconds, 2),
        "aggregate_tokens_per_second": round(sum(counts) / seconds, 2),
        "batches": list(batcher.batch_sizes),
    }


def _request(learner: CausalLMLearner, ids: list[int], tokens: int):
    from modelyard.generation.engine import Request

    # no end-of-text token: every stream makes exactly `tokens` tokens, as min_new_tokens does for HF
    learner.generator.decoder.eos_ids = set()
    return Request(ids, learner.generator.options(max_new_tokens=tokens, temperature=0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    if args.threads:
        model_thread.call(torch.set_num_threads, args.threads)  # OpenMP settings are per thread
    # every model call on the server's one model thread (see modelyard.model_thread), as `serve` does
    learner = model_thread.call(CausalLMLearner.pretrained, "smollm2-135m", GenerationModelConfig(lora=None))
    prompts = [learner.generator.prompt_ids([{"role": "user", "content": q}]) for q in QUESTIONS]
    threads = model_thread.call(torch.get_num_threads)
    llama = llama_cpp_runner(prompts[2], args.tokens, threads)
    runners = {
        "modelyard_float": modelyard_runner(learner, prompts[2], args.tokens, "float"),
        "modelyard_int4": modelyard_runner(learner, prompts[2], args.tokens, "int4"),
    }
    if callable(llama):
        runners["llama_cpp"] = llama
    for run in runners.values():
        run()  # warm-up (builds the int4 copy once)
    times: dict[str, list] = {name: [] for name in runners}
    for _ in range(args.repeats):  # interleaved, so a change of load on the shared machine hits all alike
        for name, run in runners.items():
            times[name].append(run())
    results = {name: _summary(runs, args.tokens) for name, runs in times.items()}
    learner.generator.decoder.weights = "int4"
    many = concurrent_streams(learner, prompts, args.tokens)
    llama = results.get("llama_cpp", llama)
    new = results["modelyard_int4"]["tokens_per_second"]
    report = {
        "benchmark": "generation_speed",
        "model": "smollm2-135m",
        "prompt": QUESTIONS[2],
        "new_tokens": args.tokens,
        "repeats": args.repeats,
        "torch_threads": threads,
        "load_average_before": [round(x, 2) for x in load_before],
        "modelyard_single_stream_float": results["modelyard_float"],
        "modelyard_single_stream_int4": results["modelyard_int4"],
        "int4_vs_float": round(new / results["modelyard_float"]["tokens_per_second"], 2),
        "modelyard_8_concurrent_int4": many,
        "llama_cpp_single_stream": llama,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    if isinstance(llama, dict):
        report["int4_vs_llama_cpp"] = round(new / llama["tokens_per_second"], 2)
        decode = results["modelyard_int4"]["decode_tokens_per_second"] / llama["decode_tokens_per_second"]
        report["int4_vs_llama_cpp_decoding_only"] = round(decode, 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
