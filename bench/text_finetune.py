"""Full fine-tuning throughput, fairly: mtl's loop against a plain transformers ``Trainer`` in the same run.

Same checkpoint (all-MiniLM-L6-v2 through mtl's sources), same vader-movie-snippets sentences and tokens (cached
before any timer), batch size, steps, learning-rate schedule and precision. Four sides: the Trainer with random
and with length-grouped sampling (``train_sampling_strategy="group_by_length"``), mtl with length grouping on
(its default) and off. Every model is loaded before its timer; every timer holds the training steps and one
validation pass over the same small split. Sides alternate (A B C D, D C B A, ...); medians and spread of
examples/s, wall time, peak resident memory above the start, validation accuracy (held-out split, measured
after the timer), and model FLOPs utilisation against this machine's matmul peak measured in the same run.

    python bench/text_finetune.py --steps 60 --repeats 3 --precisions no
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from typing import Any, Callable

import numpy as np
import psutil
import torch
from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer,
                          TrainingArguments)

from mtl.data.builtin import load_builtin
from mtl.modeling import label_config
from mtl.tasks import TextSentiment

SIDES = ("Trainer random", "Trainer grouped", "mtl grouped", "mtl random")


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def synchronize() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def matmul_peak(dtype: torch.dtype, size: int | None = None, seconds: float = 2.0) -> float:
    """Measured GFLOP/s of square matrix multiplies in ``dtype`` on the device the sides train on (best burst)."""
    size = size or (8192 if DEVICE == "cuda" else 2048)
    a, b = (torch.randn(size, size, dtype=dtype, device=DEVICE) for _ in range(2))
    torch.mm(a, b)
    synchronize()
    best, ended = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < ended:
        started = time.perf_counter()
        for _ in range(3):
            torch.mm(a, b)
        synchronize()
        best = max(best, 3 * 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return best


class PeakMemory:
    """Peak memory above the level at start: the GPU's allocated memory on CUDA, else this process's resident
    memory sampled every 20 ms in a thread."""

    def __enter__(self) -> "PeakMemory":
        if DEVICE == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.gpu_start = torch.cuda.memory_allocated()
        self.process, self.start = psutil.Process(), psutil.Process().memory_info().rss
        self.peak, self.running = self.start, True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc: Any) -> None:
        self.running = False
        self.thread.join()

    @property
    def megabytes(self) -> float:
        if DEVICE == "cuda":
            return (torch.cuda.max_memory_allocated() - self.gpu_start) / 2**20
        return (self.peak - self.start) / 2**20


def non_embedding_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", choices=["no", "bf16"], default=["no"])
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--held-out", type=int, default=512, help="validation sentences scored after each timer")
    args = parser.parse_args()

    data = load_builtin("vader-movie-snippets")
    examples = args.steps * args.batch_size
    train = data["train"].shuffle(seed=0).select(range(examples)).select_columns(["text", "label"])
    probe = data["validation"].select(range(args.batch_size)).select_columns(["text", "label"])  # inside timers
    held_out = data["validation"].select(range(args.batch_size, args.batch_size + args.held_out)).select_columns(["text", "label"])
    task = TextSentiment(max_length=args.max_length)
    task.prepare()
    names = train.features["label"].names
    features, probe_features = task.features(train), task.features(probe)  # tokenized once, before any timer
    tokens = float(np.mean([len(ids) for ids in features["input_ids"]]))

    def trainer_side(grouped: bool, precision: str) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            torch.manual_seed(42)
            model = AutoModelForSequenceClassification.from_pretrained(  # float32 master weights, as mtl loads them
                str(task.source.path), **label_config(names), ignore_mismatched_sizes=True, dtype=torch.float32)
            with tempfile.TemporaryDirectory() as out:
                trainer_args = TrainingArguments(
                    out, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
                    max_steps=args.steps, learning_rate=5e-5, warmup_steps=max(1, int(0.06 * args.steps)),
                    weight_decay=0.01, bf16=precision == "bf16", use_cpu=not torch.cuda.is_available(),
                    train_sampling_strategy="group_by_length" if grouped else "random", report_to=[],
                    save_strategy="no", logging_strategy="no", eval_strategy="steps", eval_steps=args.steps, seed=42)
                trainer = Trainer(model=model, args=trainer_args, train_dataset=features, eval_dataset=probe_features,
                                  data_collator=DataCollatorWithPadding(task.processor))
                with PeakMemory() as memory:
                    started = time.perf_counter()
                    trainer.train()
                    synchronize()
                    seconds = time.perf_counter() - started
            held = TextSentiment(max_length=args.max_length)
            held.model, held.label_names = model, list(names)
            return {"seconds": seconds, "memory": memory.megabytes,
                    "accuracy": held.evaluate(held_out)["accuracy"], "parameters": non_embedding_parameters(model)}
        return run

    def mtl_side(grouped: bool, precision: str) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            fresh = TextSentiment(max_length=args.max_length)
            fresh.prepare()
            torch.manual_seed(42)
            fresh.label_names = list(names)
            fresh._ensure_model(names)  # the model is loaded before the timer, as for the Trainer
            with PeakMemory() as memory:
                started = time.perf_counter()
                fresh.fit(train, probe, epochs=1, batch_size=args.batch_size, learning_rate=5e-5, warmup_ratio=0.06,
                          mixed_precision=precision, group_by_length=grouped, log_every=10_000)
                synchronize()
                seconds = time.perf_counter() - started
            return {"seconds": seconds, "memory": memory.megabytes, "accuracy": fresh.evaluate(held_out)["accuracy"],
                    "parameters": non_embedding_parameters(fresh.model)}
        return run

    makers = {"Trainer random": lambda p: trainer_side(False, p), "Trainer grouped": lambda p: trainer_side(True, p),
              "mtl grouped": lambda p: mtl_side(True, p), "mtl random": lambda p: mtl_side(False, p)}
    runs = {(side, precision): makers[side](precision) for precision in args.precisions for side in args.sides}
    peaks = {"no": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    results: dict[tuple[str, str], list[dict[str, float]]] = {key: [] for key in runs}
    order = list(runs)
    for repeat in range(args.repeats):
        for key in (order if repeat % 2 == 0 else order[::-1]):
            results[key].append(runs[key]())
    peaks_after = {"no": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}

    print(f"\n{examples} examples ({args.steps} steps of {args.batch_size}), {tokens:.1f} tokens per example on average, "
          f"{args.repeats} repeats alternating, torch threads {torch.get_num_threads()}, {psutil.cpu_count()} CPUs, "
          f"device {torch.cuda.get_device_name() if DEVICE == 'cuda' else 'cpu'}")
    print(f"matmul peak on {DEVICE} (best burst) before / after: fp32 {peaks['no']:.0f} / {peaks_after['no']:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.0f} / {peaks_after['bf16']:.0f} GFLOP/s")
    for precision in args.precisions:
        reference = statistics.median(r["seconds"] for r in results.get(("Trainer grouped", precision), [{"seconds": 0}]))
        for side in args.sides:
            rows = results[(side, precision)]
            rates = sorted(examples / r["seconds"] for r in rows)
            seconds = statistics.median(r["seconds"] for r in rows)
            flops = 6 * rows[0]["parameters"] * tokens * statistics.median(rates)
            mfu = flops / 1e9 / max(peaks[precision], peaks_after[precision])
            ratio = f", {reference / seconds:.2f}x Trainer grouped" if reference else ""
            print(f"{precision:4s} {side:16s}: {statistics.median(rates):6.1f} examples/s ({rates[0]:.1f}-{rates[-1]:.1f}), "
                  f"{seconds:6.1f} s, peak +{statistics.median(r['memory'] for r in rows):5.0f} MB, "
                  f"MFU {100 * mfu:4.1f}% of the {'fp32' if precision == 'no' else precision} peak, held-out accuracy "
                  f"{statistics.median(r['accuracy'] for r in rows):.4f}{ratio}")


if __name__ == "__main__":
    main()
