"""Frozen-backbone training time: mtl's feature cache against a plain transformers ``Trainer`` in the same run.

Same checkpoint (all-MiniLM-L6-v2 through mtl's sources), same vader-movie-snippets sentences and
tokenization, same batch size, epochs and precision; the Trainer gets the backbone frozen
(``requires_grad=False``), mtl gets ``freeze="backbone"`` and computes the backbone's features once.
Prints wall time for each, their ratio (GUIDE target: >= 4x for 5 epochs) and both validation accuracies.

    python bench/frozen_backbone.py --examples 2000 --epochs 5
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer,
                          TrainingArguments)

from mtl.data.builtin import load_builtin
from mtl.modeling import apply_freezing, label_config
from mtl.tasks import TextSentiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    args = parser.parse_args()

    data = load_builtin("vader-movie-snippets")
    train = data["train"].shuffle(seed=0).select(range(args.examples)).select_columns(["text", "label"])
    validation = data["validation"].select_columns(["text", "label"])
    task = TextSentiment(max_length=64)
    task.prepare()
    names = train.features["label"].names

    # --- plain transformers Trainer: frozen encoder, the head trains; the encoder still runs every epoch
    features, val_features = task.features(train), task.features(validation)
    torch.manual_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(str(task.source.path), **label_config(names),
                                                               ignore_mismatched_sizes=True)
    apply_freezing(model, "backbone")
    with tempfile.TemporaryDirectory() as out:
        trainer_args = TrainingArguments(out, per_device_train_batch_size=args.batch_size,
                                         per_device_eval_batch_size=2 * args.batch_size,
                                         num_train_epochs=args.epochs, learning_rate=args.learning_rate,
                                         warmup_steps=0, weight_decay=0.01, use_cpu=not torch.cuda.is_available(),
                                         report_to=[], save_strategy="no", logging_strategy="no",
                                         eval_strategy="epoch", seed=42)
        trainer = Trainer(model=model, args=trainer_args, train_dataset=features, eval_dataset=val_features,
                          data_collator=DataCollatorWithPadding(task.processor),
                          compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())})
        started = time.perf_counter()
        trainer.train()
        trainer_seconds = time.perf_counter() - started
        trainer_accuracy = trainer.evaluate()["eval_accuracy"]

    # --- mtl: the same examples, epochs and validation passes through Task.fit (feature cache on)
    started = time.perf_counter()
    result = task.fit(train, validation, freeze="backbone", epochs=args.epochs, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, warmup_ratio=0.0, log_every=10_000)
    mtl_seconds = time.perf_counter() - started

    print(f"{args.examples} training sentences, {len(validation)} validation, {args.epochs} epochs, batch "
          f"{args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"Trainer (frozen params)  : {trainer_seconds:7.1f} s, validation accuracy {trainer_accuracy:.4f}")
    print(f"mtl (feature cache)      : {mtl_seconds:7.1f} s, validation accuracy {result.history[-1]['accuracy']:.4f}")
    print(f"ratio Trainer/mtl time: {trainer_seconds / mtl_seconds:.2f}x (target >= 4x)")


if __name__ == "__main__":
    main()
