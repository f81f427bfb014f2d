"""ONNX export with a parity check: ``python -m mtl.export OUT --onnx``.

Writes ``OUT/onnx/model.onnx`` (with the config and processor files beside it, so the folder is complete),
then runs onnxruntime and PyTorch on the same real inputs (a few texts through the saved tokenizer, images
through the saved image processor, clips through the feature extractor) and prints the largest difference
of the logits; above the tolerance (1e-4) it fails. Needs ``pip install "mtl[onnx]"``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .errors import MtlError

logger = logging.getLogger(__name__)

TOLERANCE = 1e-4
SAMPLE_TEXTS = ["a gorgeous, moving film", "dull and far too long", "what a film", "the plot was fine",
                "I would not watch it again"]


@dataclass
class ExportResult:
    """Where the ONNX model went and how closely it matches PyTorch."""

    path: Path
    max_abs_diff: float
    num_inputs: int
    input_names: list[str]


class _LogitsOnly(torch.nn.Module):
    """The classifier with positional tensor inputs and logits as the only output (what ONNX needs)."""

    def __init__(self, model: torch.nn.Module, names: Sequence[str]):
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors))).logits


def export_onnx(folder: str | Path, *, samples: Sequence[Any] | None = None, opset: int | None = None,
                tolerance: float = TOLERANCE) -> ExportResult:
    """Export the model of an mtl output folder to ``folder/onnx/model.onnx`` and check it against PyTorch."""
    from .predict import load_task

    _require_onnx()
    folder = Path(folder)
    task = load_task(folder)
    model = task.model.eval().float()
    inputs = list(samples if samples is not None else sample_inputs(task, folder))
    batch = sample_batch(task, inputs)
    names = list(batch)
    target = folder / "onnx"
    target.mkdir(exist_ok=True)
    path = target / "model.onnx"
    _export(_LogitsOnly(model, names).eval(), batch, path, task.spec.modality, opset)
    model.config.save_pretrained(target)
    task.processor.save_pretrained(target)
    smaller = sample_batch(task, inputs[:2])  # other batch size and length: checks the dynamic axes
    difference = max(parity(path, model, batch), parity(path, model, smaller))
    result = ExportResult(path, difference, len(next(iter(batch.values()))), names)
    if difference > tolerance:
        raise MtlError(f"ONNX export of {folder}: logits differ from PyTorch by up to {difference:.2e} "
                       f"(tolerance {tolerance:.0e}); the exported model at {path} is not trustworthy")
    return result


def sample_inputs(task: Any, folder: Path) -> list[Any]:
    """A few real inputs: the test split's texts or files when the run listed them, else made-up ones."""
    import pandas as pd

    predictions = folder / "test_predictions.csv"
    if predictions.is_file():
        table = pd.read_csv(predictions, nrows=8, keep_default_na=False)
        values = table["input"].astype(str).tolist() if "input" in table else []
        if task.spec.modality == "text" and values:
            return values
        files = [v for v in values if Path(v).is_file()]
        if files:
            return files
    modality = task.spec.modality
    if modality == "text":
        return SAMPLE_TEXTS
    rng = np.random.default_rng(0)
    if modality == "image":
        from PIL import Image

        return [Image.fromarray(rng.integers(0, 256, (48 + 16 * i, 64, 3), dtype=np.uint8)) for i in range(4)]
    rate = getattr(task.processor, "sampling_rate", None) or getattr(
        getattr(task.processor, "feature_extractor", None), "sampling_rate", 16_000)
    time = np.arange(rate) / rate
    return [(0.3 * np.sin(2 * np.pi * (220 + 110 * i) * time) + 0.01 * rng.standard_normal(rate)).astype(np.float32)
            for i in range(3)]


def sample_batch(task: Any, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
    """Model inputs for raw ``inputs``, preprocessed and collated exactly as the task does for inference."""
    features = task._features(task.inputs_to_dataset(list(inputs)))
    batch = task.collate([features[i] for i in range(len(features))])
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor) and k != "labels"}


def parity(path: Path, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's logits on ``batch``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    (onnx_logits,) = session.run(["logits"], {name: batch[name].numpy() for name in wanted})
    with torch.no_grad():
        torch_logits = model(**batch).logits.float().numpy()
    return float(np.abs(onnx_logits - torch_logits).max())


def _export(module: torch.nn.Module, batch: dict[str, torch.Tensor], path: Path, modality: str,
            opset: int | None) -> None:
    """torch.onnx.export with dynamic batch (and sequence / time) axes; the TorchScript exporter as a fallback."""
    from torch.export import Dim

    names = list(batch)
    axes = {name: [0, *range(1, batch[name].dim())] if modality != "image" and batch[name].dim() >= 2 else [0]
            for name in names}  # images: batch only; text: batch and sequence; audio: every axis but channels
    if modality == "audio":
        axes = {name: [0, batch[name].dim() - 1] for name in names}
    options = dict(input_names=names, output_names=["logits"], **({"opset_version": opset} if opset else {}))
    args = tuple(batch.values())
    try:
        shapes = tuple({axis: Dim.AUTO for axis in axes[name]} for name in names)
        with torch.no_grad():
            torch.onnx.export(module, args, str(path), dynamo=True, external_data=False, dynamic_shapes=(shapes,),
                              verbose=False, **options)
        return
    except Exception as error:  # the dynamo exporter cannot trace every model yet; TorchScript may
        logger.warning("dynamo ONNX export failed (%s); trying the TorchScript exporter", str(error).splitlines()[0])
    dynamic = {name: {axis: f"{name}_{axis}" for axis in axes[name]} for name in names}
    try:
        with torch.no_grad():
            torch.onnx.export(module, args, str(path), dynamo=False,
                              dynamic_axes={**dynamic, "logits": {0: "batch"}}, **options)
    except Exception as error:
        raise MtlError(f"ONNX export failed for both exporters: {type(error).__name__}: "
                       f"{str(error).splitlines()[0]}") from None


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise MtlError(f"ONNX export needs {error.name}: pip install \"mtl[onnx]\" "
                       "(onnx, onnxruntime, onnxscript)") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtl.export", description="Export a saved mtl model.",
                                     epilog="example: python -m mtl.export outputs/sentiment --onnx")
    parser.add_argument("model", help="an output folder of mtl")
    parser.add_argument("--onnx", action="store_true", help="export to OUT/onnx/model.onnx with a parity check")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    args = parser.parse_args(argv)
    if not args.onnx:
        parser.error("choose a format: --onnx")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import datasets
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        datasets.disable_progress_bars()
        result = export_onnx(args.model, opset=args.opset)
    except MtlError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {result.path} (inputs: {', '.join(result.input_names)})")
    print(f"parity: max |onnx - torch| = {result.max_abs_diff:.2e} on {result.num_inputs} real inputs "
          f"(tolerance {TOLERANCE:.0e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
