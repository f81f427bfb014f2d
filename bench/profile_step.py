"""Where a text fine-tuning step spends its time: ``torch.profiler`` over a few steps of all-MiniLM-L6-v2
(forward, backward, fused AdamW), fp32 and bf16 autocast, on the same batches; prints the top operators by self
CPU time and the step time of each precision.

    python bench/profile_step.py --steps 4 --batch-size 32 --top 12
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from mtl.data.builtin import load_builtin
from mtl.modeling import label_config
from mtl.tasks import TextSentiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    data = load_builtin("vader-movie-snippets")["train"].shuffle(seed=0).select(range(args.steps * args.batch_size))
    task = TextSentiment(max_length=64)
    task.prepare()
    features = task.features(data.select_columns(["text", "label"]))
    collate = DataCollatorWithPadding(task.processor)
    rows = [features[i] for i in range(len(features))]
    batches = [collate(rows[i:i + args.batch_size]) for i in range(0, len(rows), args.batch_size)]
    names = data.features["label"].names
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(str(task.source.path), **label_config(names),
                                                                   ignore_mismatched_sizes=True).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)

        def step(batch: dict) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step(batches[0])  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            started = time.perf_counter()
            for batch in batches:
                step(batch)
            seconds = (time.perf_counter() - started) / len(batches)
        print(f"\n{precision}: {seconds:.2f} s per step of {args.batch_size} (profiled), torch threads {torch.get_num_threads()}")
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
