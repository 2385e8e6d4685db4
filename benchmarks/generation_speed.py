"""Generation speed with SmolLM2-135M (fp32, greedy): modelyard's KV-cache decoder for one stream and for 8
concurrent streams (through the server's GenerationBatcher) against transformers' `generate`, one request at a
time, and against llama.cpp running the package's own Q4_1 GGUF (the reference for what this CPU can do) when
`llama-cpp-python` is installed: it is not a dependency (it compiles from source for ~10 minutes here), so
`pip install llama-cpp-python==0.3.36` first to include it. Prints JSON.

    python benchmarks/generation_speed.py [--tokens 48] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import threading
import time

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


def hf_generate(learner: CausalLMLearner, prompts: list[list[int]], tokens: int) -> dict:
    model, produced, start = learner.module, 0, time.perf_counter()
    for ids in prompts:
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            pad_token_id=learner.pad_id,
        )
        produced += out.shape[1] - len(ids)
    seconds = time.perf_counter() - start
    return {"tokens": produced, "seconds": round(seconds, 2), "tokens_per_second": round(produced / seconds, 2)}


def llama_cpp_generate(prompts: list[list[int]], tokens: int, threads: int) -> dict | str:
    """llama.cpp on the same GGUF and prompt token ids, greedy, exactly `tokens` new tokens a request."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return "not measured: llama-cpp-python is not installed (pip install llama-cpp-python==0.3.36)"
    from modelyard.models.catalog import locate

    llm = Llama(model_path=str(locate("smollm2-135m")), n_ctx=512, n_threads=threads, verbose=False)
    produced, start = 0, time.perf_counter()
    for ids in prompts:
        llm.reset()
        for count, _ in enumerate(llm.generate(ids, temp=0.0, reset=True), start=1):
            if count == tokens:
                break
        produced += tokens
    seconds = time.perf_counter() - start
    return {
        "weights": "Q4_1 GGUF (4-bit), as shipped",
        "tokens": produced,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(produced / seconds, 2),
    }


def single_streams(learner: CausalLMLearner, prompts: list[list[int]], tokens: int) -> dict:
    produced, start, first = 0, time.perf_counter(), []
    for ids in prompts:
        t0 = time.perf_counter()
        for i, event in enumerate(learner.generator.run([_request(learner, ids, tokens)])):
            if i == 0:
                first.append(time.perf_counter() - t0)
            produced = produced + event.completion_tokens if event.finish_reason else produced
    seconds = time.perf_counter() - start
    return {
        "tokens": produced,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(produced / seconds, 2),
        "first_token_ms": round(1000 * sum(first) / len(first), 1),
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
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        model_thread.call(torch.set_num_threads, args.threads)  # OpenMP settings are per thread
    options = GenerationModelConfig(backbone="smollm2-135m", lora=None)
    # every model call on the server's one model thread (see modelyard.model_thread), as `serve` does
    learner = model_thread.call(CausalLMLearner.pretrained, "smollm2-135m", options)
    prompts = [learner.generator.prompt_ids([{"role": "user", "content": q}]) for q in QUESTIONS]

    def reference() -> dict:
        with torch.inference_mode():
            hf_generate(learner, prompts[:1], 4)  # warm-up
            return hf_generate(learner, prompts, args.tokens)

    hf = model_thread.call(reference)
    single = model_thread.call(single_streams, learner, prompts, args.tokens)
    many = concurrent_streams(learner, prompts, args.tokens)
    threads = model_thread.call(torch.get_num_threads)
    llama = llama_cpp_generate(prompts, args.tokens, threads)
    print(
        json.dumps(
            {
                "benchmark": "generation_speed",
                "model": "smollm2-135m fp32",
                "new_tokens_per_request": args.tokens,
                "torch_threads": threads,
                "hf_generate_one_at_a_time": hf,
                "modelyard_single_stream": single,
                "modelyard_8_concurrent": many,
                "single_vs_hf": round(single["tokens_per_second"] / hf["tokens_per_second"], 2),
                "concurrent_vs_hf": round(many["aggregate_tokens_per_second"] / hf["tokens_per_second"], 2),
                "llama_cpp_one_at_a_time": llama,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
