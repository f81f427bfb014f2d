"""Full fine-tuning throughput: mtl's loop against a plain transformers ``Trainer`` in the same run.

Same checkpoint (all-MiniLM-L6-v2 through mtl's sources), same vader-movie-snippets sentences, same
tokenization, batch size, step count and precision. Prints training examples per second for each and
their ratio (GUIDE target: mtl >= 1.25x the Trainer).

    python bench/text_finetune.py --steps 120 --batch-size 32 --precision no
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer,
                          TrainingArguments)

from mtl.data.builtin import load_builtin
from mtl.modeling import label_config
from mtl.tasks import TextSentiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", choices=["no", "bf16"], default="no")
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()

    data = load_builtin("vader-movie-snippets")
    train = data["train"].shuffle(seed=0).select(range(args.steps * args.batch_size))
    probe = data["validation"].select(range(args.batch_size))
    task = TextSentiment(max_length=args.max_length)
    task.prepare()
    names = train.features["label"].names

    # --- plain transformers Trainer, dynamic padding, the same tokenized examples
    features = task.features(train.select_columns(["text", "label"]))
    model = AutoModelForSequenceClassification.from_pretrained(str(task.source.path), **label_config(names),
                                                               ignore_mismatched_sizes=True)
    with tempfile.TemporaryDirectory() as out:
        trainer_args = TrainingArguments(out, per_device_train_batch_size=args.batch_size, max_steps=args.steps,
                                         learning_rate=5e-5, warmup_steps=max(1, int(0.06 * args.steps)), weight_decay=0.01,
                                         bf16=args.precision == "bf16", use_cpu=not torch.cuda.is_available(),
                                         report_to=[], save_strategy="no", logging_strategy="no", seed=42)
        trainer = Trainer(model=model, args=trainer_args, train_dataset=features,
                          data_collator=DataCollatorWithPadding(task.processor))
        started = time.perf_counter()
        trainer.train()
        trainer_seconds = time.perf_counter() - started

    # --- mtl: the same examples through Task.fit (one tiny validation pass included in its time)
    started = time.perf_counter()
    task.fit(train, probe, epochs=1, batch_size=args.batch_size, learning_rate=5e-5,
             mixed_precision=args.precision, log_every=10_000)
    mtl_seconds = time.perf_counter() - started

    examples = args.steps * args.batch_size
    print(f"examples: {examples}, batch {args.batch_size}, precision {args.precision}, torch threads {torch.get_num_threads()}")
    print(f"Trainer : {examples / trainer_seconds:8.1f} examples/s ({trainer_seconds:.1f} s)")
    print(f"mtl     : {examples / mtl_seconds:8.1f} examples/s ({mtl_seconds:.1f} s)")
    print(f"ratio mtl/Trainer: {trainer_seconds / mtl_seconds:.2f}x (target >= 1.25x)")


if __name__ == "__main__":
    main()
