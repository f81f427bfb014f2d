"""ONNX export with a parity check: ``OUT/onnx/model.onnx`` (config and processor beside it), swapped in only
when onnxruntime's logits match PyTorch's within the tolerance (1e-4) on real or, failing those, synthetic inputs.

Needs ``pip install "mtl[onnx]"``.

Example::

    result = export_onnx(task, "outputs/sentiment")
    result.max_abs_diff, result.inputs_kind        # 3e-07, 'test-split inputs'
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import MtlError
from ..fs import atomic_folder
from ..modeling.classifier import plain_config
from .output_dir import note_written

logger = logging.getLogger(__name__)


TOLERANCE = 1e-4


@dataclass
class ExportResult:
    """Where the ONNX model went and how closely it matches PyTorch."""

    path: Path
    max_abs_diff: float
    num_inputs: int
    input_names: list[str]
    inputs_kind: str  # "test-split inputs", "given inputs" or "synthetic inputs": what parity was checked on


class _LogitsOnly(torch.nn.Module):
    """The classifier with positional tensor inputs and logits as the only output (what ONNX needs)."""

    def __init__(self, model: torch.nn.Module, names: Sequence[str]):
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors))).logits


def export_onnx(task: Any, folder: str | Path, *, samples: Sequence[Any] | None = None, opset: int | None = None,
                tolerance: float = TOLERANCE) -> ExportResult:
    """Export ``task``'s model (loaded from the mtl output ``folder``) to ``folder/onnx/model.onnx`` and check it
    against PyTorch on ``samples``, else on the run's test inputs, else on the task's synthetic inputs."""
    _require_onnx()
    check_opset(opset)
    folder = Path(folder)
    model = task.model.eval().float()
    kind = "given inputs"
    if samples is None:
        samples, kind = run_test_inputs(task, folder), "test-split inputs"
    if not samples:
        samples, kind = task.sample_inputs(4), "synthetic inputs"
    inputs = list(samples)
    batch = sample_batch(task, inputs)
    names = list(batch)
    with atomic_folder(folder / "onnx") as staging:
        path = staging / "model.onnx"
        _export(_LogitsOnly(model, names).eval(), batch, path, {n: task.onnx_dynamic_axes(n, batch[n]) for n in names},
                opset)
        written = _opset_of(path)
        if opset and written != opset:
            raise MtlError(f"--opset {opset}: the exporter wrote opset {written} for this model, not {opset}; use an "
                           f"opset from {MIN_OPSET} to {written} or leave --opset out (not written)")
        smaller = other_shape_batch(task, inputs, batch)  # another batch size and length: the dynamic axes
        try:
            difference = parity(path, model, batch)
        except Exception as error:  # onnxruntime cannot load the graph (an opset it does not support)
            raise MtlError(f"ONNX export of {folder}: onnxruntime cannot run the exported graph (opset {written}): "
                           f"{str(error).splitlines()[0][:200]}; try another --opset (not written)") from None
        try:
            difference = max(difference, parity(path, model, smaller))
        except Exception as error:  # onnxruntime's InvalidArgument: an axis the graph fixed varies here
            shapes = ", ".join(f"{name} {tuple(value.shape)}" for name, value in smaller.items())
            raise MtlError(f"ONNX export of {folder}: the graph rejects inputs shaped {shapes} after export with "
                           f"{', '.join(f'{n} {tuple(v.shape)}' for n, v in batch.items())} "
                           f"({str(error).splitlines()[0][:160]}); {type(task).__name__}.onnx_dynamic_axes() must "
                           "list every axis that varies between calls (text: batch and sequence); not "
                           "written") from None
        if difference > tolerance:
            raise MtlError(f"ONNX export of {folder}: logits differ from PyTorch by up to {difference:.2e} on "
                           f"{kind} (tolerance {tolerance:.0e}); the exported model is not trustworthy and was "
                           "not written")
        # the graph holds any pooling or MLP head mtl's own code adds: its config is the plain base one
        (plain_config(folder) or model.config).save_pretrained(staging)
        task.processor.save_pretrained(staging)
    note_written(folder, "onnx")  # part of the output now: --overwrite may replace it with the rest
    return ExportResult(folder / "onnx" / "model.onnx", difference, len(next(iter(batch.values()))), names, kind)


def run_test_inputs(task: Any, folder: Path, count: int = 8) -> list[Any]:
    """Up to ``count`` real inputs the run listed in ``test_predictions.csv`` that can still be read, else none."""
    import pandas as pd

    predictions = folder / "test_predictions.csv"
    if not predictions.is_file():
        return []
    table = pd.read_csv(predictions, nrows=count, keep_default_na=False, dtype=str)
    if "input" not in table:
        return []
    values = [task.input_from_table(value, folder) for value in table["input"].tolist()]
    return [v for v in values if not _names_a_file(v, task.spec.file_suffixes) or Path(v).is_file()]


def _names_a_file(value: Any, suffixes: Sequence[str]) -> bool:
    return isinstance(value, str) and Path(value).suffix.lower() in suffixes


def sample_batch(task: Any, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
    """Model inputs for raw ``inputs``, preprocessed and collated exactly as the task does for inference."""
    features = task.features(task.inputs_to_dataset(list(inputs)))
    batch = task.collate([features[i] for i in range(len(features))])
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor) and k != "labels"}


def other_shape_batch(task: Any, inputs: Sequence[Any], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Model inputs for one of ``inputs`` whose shapes differ from ``batch``'s beyond the batch axis (a shorter
    text), else for the first two: a second call that exercises every axis that can vary."""
    for item in inputs:
        single = sample_batch(task, [item])
        if any(single[name].shape[1:] != batch[name].shape[1:] for name in single if name in batch):
            return single
    return sample_batch(task, inputs[:2])


def parity(path: Path, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's logits on ``batch``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    (onnx_logits,) = session.run(["logits"], {name: batch[name].numpy() for name in wanted})
    with torch.no_grad():
        torch_logits = model(**batch).logits.float().numpy()
    return float(np.abs(onnx_logits - torch_logits).max())


def _export(module: torch.nn.Module, batch: dict[str, torch.Tensor], path: Path, axes: dict[str, list[int]],
            opset: int | None) -> None:
    """torch.onnx.export with the task's dynamic axes; the TorchScript exporter as a fallback."""
    from torch.export import Dim

    names = list(batch)
    options = dict(input_names=names, output_names=["logits"], **({"opset_version": opset} if opset else {}))
    args = tuple(batch.values())
    try:
        shapes = tuple({axis: Dim.AUTO for axis in axes[name]} for name in names)
        with torch.no_grad(), warnings.catch_warnings():
            # TokenPooler keeps the call's attention mask as an attribute, which the trace reads as it should
            warnings.filterwarnings("ignore", message=r"The tensor attribute .*\.mask was assigned during export")
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


MIN_OPSET = 18  # torch's dynamo exporter writes 18 or later; older opsets need conversions that fail for many ops


def check_opset(opset: int | None) -> None:
    """An ``--opset`` the exporter and onnx can write: from :data:`MIN_OPSET` to onnx's newest (None: theirs)."""
    import onnx.defs

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise MtlError(f"--opset {opset}: mtl exports ONNX opsets {MIN_OPSET} to {newest} (onnx {onnx.__version__}); "
                       "leave --opset out for the exporter's default")


def _opset_of(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise MtlError(f"ONNX export needs {error.name}: pip install \"mtl[onnx]\" "
                       "(onnx, onnxruntime, onnxscript)") from None
