"""Classification metrics that work offline (scikit-learn), plus any ``evaluate`` metric from the Hub by name.

Example::

    compute_metrics([0, 1, 1], [0, 1, 0], ["accuracy", "macro_f1"])
    # {'accuracy': 0.667, 'macro_f1': 0.667}
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from sklearn import metrics as skm

from .errors import MtlError, did_you_mean

BUILTIN_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": skm.accuracy_score,
    "macro_f1": lambda y, p: skm.f1_score(y, p, average="macro", zero_division=0),
    "weighted_f1": lambda y, p: skm.f1_score(y, p, average="weighted", zero_division=0),
    "macro_precision": lambda y, p: skm.precision_score(y, p, average="macro", zero_division=0),
    "macro_recall": lambda y, p: skm.recall_score(y, p, average="macro", zero_division=0),
    "balanced_accuracy": skm.balanced_accuracy_score,
    "mcc": skm.matthews_corrcoef,
}
LOWER_IS_BETTER = {"loss"}


def compute_metrics(labels: Sequence[int], predictions: Sequence[int], names: Sequence[str]) -> dict[str, float]:
    """The named metrics; names not built in are loaded with ``evaluate.load`` (needs the Hub)."""
    y, p = np.asarray(labels), np.asarray(predictions)
    results: dict[str, float] = {}
    for name in names:
        if name in BUILTIN_METRICS:
            results[name] = float(BUILTIN_METRICS[name](y, p))
        else:
            results.update(_hub_metric(name, y, p))
    return results


def scores_from_logits(logits: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Cross-entropy loss and the named metrics from collected logits and integer labels."""
    import torch

    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits).float(), torch.from_numpy(labels).long()).item()
    return {"loss": loss, **compute_metrics(labels, logits.argmax(-1), names)}


def require_metrics(names: Sequence[str]) -> None:
    """Check before training that every metric can be computed: built in, or loadable with ``evaluate``."""
    for name in names:
        if name not in BUILTIN_METRICS:
            _load_hub_metric(name)


def _load_hub_metric(name: str) -> Any:
    try:
        import evaluate

        return evaluate.load(name)
    except Exception as error:
        raise MtlError(f"metrics: {name!r} is not built in{did_you_mean(name, BUILTIN_METRICS)} (built in: "
                       f"{', '.join(BUILTIN_METRICS)}), and `evaluate` could not load it from the Hub "
                       f"({type(error).__name__}); use a built-in name offline") from None


def _hub_metric(name: str, labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    metric = _load_hub_metric(name)
    computed = metric.compute(predictions=predictions.tolist(), references=labels.tolist())
    return {(key if key != name.split("/")[-1] else name): float(value) for key, value in computed.items()
            if isinstance(value, (int, float, np.floating))}


def classification_details(labels: Sequence[int], predictions: Sequence[int], label_names: Sequence[str]) -> dict[str, Any]:
    """Per-class precision/recall/F1/support and the confusion matrix (rows = true, columns = predicted)."""
    ids = list(range(len(label_names)))
    report = skm.classification_report(labels, predictions, labels=ids, target_names=list(label_names),
                                       output_dict=True, zero_division=0)
    per_class = {name: {k: float(v) for k, v in report[name].items()} for name in label_names}
    matrix = skm.confusion_matrix(labels, predictions, labels=ids)
    return {"per_class": per_class, "confusion_matrix": matrix.tolist(), "labels": list(label_names)}


def is_better(metric: str, new: float, best: float | None) -> bool:
    """Whether ``new`` improves on ``best`` for ``metric``."""
    if best is None:
        return True
    return new < best if metric in LOWER_IS_BETTER else new > best
