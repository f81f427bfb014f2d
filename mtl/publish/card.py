"""The model card (``README.md`` of an output folder): Hub metadata, then what the model is and how it was made.

The YAML header is built with ``huggingface_hub.ModelCardData`` and ``EvalResult`` (base_model, datasets,
license, tags, pipeline_tag, model-index with the test results), so the Hub reads it as it reads its own.

Example::

    card = build_card(summary, recipe.to_dict(), TextSentiment.spec, repo_id="me/rt-minilm")
    card.save("outputs/sentiment/README.md")
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import yaml

from ..modeling import heads
from .compare import COMPARE_PNG
from .ranking import RANKING_PNG
from .reports import CONFUSION_FILE, CURVES_FILE

CARD_FILE = "README.md"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def build_card(summary: dict[str, Any], recipe: dict[str, Any] | None, spec: Any, usage: list[str], *,
               repo_id: str | None = None, license: str | None = None):
    """A ``huggingface_hub.ModelCard`` from a run's summary (metrics.json), its recipe, the task's spec and the
    task's usage code (``Task.usage_code``)."""
    from huggingface_hub import ModelCard, ModelCardData

    recipe = _local_paths_as_names(recipe)  # a card is for others to read: no absolute path of this machine
    name = (repo_id or Path((recipe or {}).get("output", {}).get("dir", "model")).name).split("/")[-1]
    source = _data_source(recipe)
    test_source = ((recipe or {}).get("data") or {}).get("test_source") or source
    base = summary["checkpoint"] if _is_hub_id(summary["checkpoint"]) else None
    data = ModelCardData(
        license=license or "other", library_name="transformers",
        tags=["mtl", spec.modality, spec.pipeline_tag, "transfer-learning"], pipeline_tag=spec.pipeline_tag,
        base_model=base, datasets=[source] if _is_hub_id(source) else None,
        model_name=name, eval_results=_eval_results(summary, spec, test_source) or None,
    )
    body = _body(summary, recipe, spec, name, base, usage)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def write_card(folder: Path, summary: dict[str, Any], recipe: dict[str, Any] | None, spec: Any, usage: list[str], *,
               repo_id: str | None = None, license: str | None = None) -> Path:
    """Write the model card as ``folder/README.md``."""
    path = Path(folder) / CARD_FILE
    build_card(summary, recipe, spec, usage, repo_id=repo_id, license=license).save(path)
    return path


def write_task_card(task: Any, folder: Path, *, repo_id: str | None = None, license: str | None = None) -> Path:
    """The card of a fitted Task alone (the Python API's ``push_to_hub``): no recipe, no test results."""
    fit, report = task.fit_result, task.freeze_report
    summary = {"task": task.name, "checkpoint": task.checkpoint, "labels": list(task.label_names),
               "freeze": str(report) if report else "unknown (loaded model)",
               "train_seconds": round(fit.train_seconds, 1) if fit else None,
               "validation_best": {"epoch": fit.best_epoch, fit.metric_name: fit.best_metric} if fit else {}}
    license = license or base_license(task.source.path if task.source else None, task.checkpoint)
    usage = task.usage_code(repo_id or "path/to/this/folder", heads.needs_remote_code(task.model.config))
    return write_card(folder, summary, None, task.spec, usage, repo_id=repo_id, license=license)


def base_license(checkpoint_folder: str | Path | None, hub_id: str | None = None) -> str | None:
    """The license in the base checkpoint's own model card, else the one the offline mirror catalog records."""
    from huggingface_hub import ModelCard

    from ..sources.catalog import MIRRORS

    card = Path(checkpoint_folder) / CARD_FILE if checkpoint_folder else None
    if card and card.is_file():
        try:
            return ModelCard.load(card).data.license
        except Exception:  # a malformed upstream card must not stop a run
            pass
    mirror = MIRRORS.get(hub_id or "")
    return mirror.license if mirror else None


def _compare_section(rows: list[dict[str, Any]]) -> list[str]:
    """Transfer versus scratch: each run's start, labels, test score, time and budget (what each start was given)."""
    metric = next((key for key in rows[0] if key.startswith("test_") and key != "test_loss"), None)
    lines = ["## Pretrained versus trained from scratch", "",
             f"| start | labels | test {metric[5:] if metric else ''} | training time | epochs | budget | ended by |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['init']} | {r['train_examples']:,} ({r['label_fraction']:.0%}) | "
              f"{r[metric]:.4f} | {r['train_seconds']:.0f} s | {r['epochs']} | {r.get('budget', '')} | "
              f"{r.get('ended_by', '')} |" for r in rows] if metric else []
    return [*lines, "", f"![Pretrained versus scratch]({COMPARE_PNG})", ""]


def _is_hub_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_HUB_ID.fullmatch(value)) and not Path(value).exists()


def _local_paths_as_names(value: Any) -> Any:
    """``value`` (a recipe mapping, a list or a string) with every absolute local path (``/x/y``, ``~/y``,
    ``C:\\x\\y``) replaced by its base name (``y``); Hub ids and relative paths stay as they are."""
    if isinstance(value, dict):
        return {key: _local_paths_as_names(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_local_paths_as_names(item) for item in value]
    if isinstance(value, str) and (value.startswith("~") or PurePosixPath(value).is_absolute()
                                   or PureWindowsPath(value).is_absolute()):
        return PureWindowsPath(value).name if "\\" in value else PurePosixPath(value).name
    return value


def _data_source(recipe: dict[str, Any] | None) -> str:
    data = (recipe or {}).get("data") or {}
    if data.get("source"):
        return str(data["source"])
    files = data.get("files") or {}
    return ", ".join(Path(str(f)).name for f in files.values()) or "user data"


def _eval_results(summary: dict[str, Any], spec: Any, source: str) -> list:
    from huggingface_hub import EvalResult

    test = summary.get("test") or {}
    dataset_type = source if _is_hub_id(source) else Path(source).name or source
    return [EvalResult(task_type=spec.pipeline_tag, dataset_type=dataset_type, dataset_name=Path(source).name or source,
                       dataset_split="test", metric_type=name, metric_name=name.replace("_", " "),
                       metric_value=round(value, 4))
            for name, value in test.items() if isinstance(value, float) and name != "loss"]


def _body(summary: dict[str, Any], recipe: dict[str, Any] | None, spec: Any, name: str, base: str | None,
          usage: list[str]) -> str:
    labels = summary["labels"]
    base_text = f"[{base}](https://huggingface.co/{base})" if base else \
        f"`{_local_paths_as_names(summary['checkpoint'])}` (a local folder)"
    test = summary.get("test") or {}
    lines = [f"# {name}", "",
             f"{'An' if spec.modality[0] in 'aeiou' else 'A'} {spec.modality} classifier ({spec.pipeline_tag}) "
             f"fine-tuned from {base_text} with "
             f"mtl (task `{summary['task']}`).", "",
             "## Task and labels", "", f"{len(labels)} labels: " + ", ".join(f"`{label}`" for label in labels), ""]
    if summary.get("data"):
        lines += ["Examples per split: " + ", ".join(f"{k} {v:,}" for k, v in summary["data"].items()), ""]
    if summary.get("selection"):
        chosen = summary["selection"]
        lines += ["## Checkpoint selection", "",
                  f"The recipe said `model.checkpoint: auto`: mtl ranked {len(chosen['candidates'])} candidate "
                  f"checkpoints on frozen features of a sample of the training data by `{chosen['score']}` "
                  f"({chosen['seconds']:.0f} s) and fine-tuned the first, `{chosen['winner']}`.", "",
                  "| checkpoint | linear probe | k-NN | LogME | seconds |", "|---|---|---|---|---|"]
        lines += [f"| {row['checkpoint']} | {row['linear_probe']:.4f} | {row['knn']:.4f} | {row['logme']:.4f} | "
                  f"{row['seconds']:.0f} |" for row in chosen["candidates"]]
        lines += ["", f"![Ranking]({RANKING_PNG})", ""]
    lines += ["## Training", "", f"- Freezing: {summary['freeze']}"]
    if summary.get("strategy"):
        chosen = summary["strategy"]
        lines.append(f"- Strategy: `train.strategy: auto` chose {chosen['name']} ({'; '.join(chosen['reasons'])})")
    if summary.get("trainable_parameters"):
        lines.append(f"- Trainable parameters: {summary['trainable_parameters']:,} of {summary['total_parameters']:,}")
    if summary.get("validation_best"):
        best = dict(summary["validation_best"])
        epoch = best.pop("epoch", None)
        lines.append(f"- Best validation epoch: {epoch} (" + ", ".join(
            f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}" for name, value in best.items())
            + ")")
    ended = [text for key, text in (("stopped_early", "early stopping"), ("stopped_by_time", "the time budget "
                                    "(train.max_seconds) ran out before the schedule's end")) if summary.get(key)]
    if ended:
        lines.append(f"- Training ended by {ended[0]}")
    if summary.get("resumed_from_epoch") or summary.get("resumed_from_step"):
        lines.append(f"- Resumed from a checkpoint ({summary.get('resumed_from_epoch') or 0} epochs finished before)")
    env = summary.get("environment") or {}
    if env:
        lines.append(f"- Hardware: {env.get('device')} ({env.get('hardware', 'unknown CPU')}), mixed precision "
                     f"{env.get('mixed_precision')}; torch {env.get('torch')}, mtl {env.get('mtl')}")
    if summary.get("train_seconds") is not None:
        lines.append(f"- Time: {summary['train_seconds']:.0f} s training"
                     + (f", {summary['total_seconds']:.0f} s in all" if summary.get("total_seconds") else ""))
    lines.append("")
    if test:
        lines += ["## Results on the test split", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in test.items() if isinstance(v, float)]
        lines += ["", "| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {label} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1-score']:.4f} | "
                  f"{int(row['support'])} |" for label, row in test.get("per_class", {}).items()]
        lines += ["", f"![Confusion matrix]({CONFUSION_FILE})", ""]
        lines += [f"![Learning curves]({CURVES_FILE})", ""] if summary.get("history") else []
    if summary.get("compare"):
        lines += _compare_section(summary["compare"])
    if summary.get("warnings"):
        lines += ["## Warning", "", *[f"- {warning}" for warning in summary["warnings"]], ""]
    lines += ["## How to use", "", "```python", *usage, "```", "",
              "## Intended use and limits", "",
              f"Made for {spec.intended_use}, to tell apart exactly the "
              f"labels above. It has no 'none of these' answer: every input gets one of the {len(labels)} labels. "
              "The test results hold for data drawn like the test split; expect lower accuracy on other sources, "
              "and check it on your own labelled sample before relying on it. The model inherits the biases and "
              f"license terms of its base model{f' ({base})' if base else ''} and of its training data.", ""]
    if recipe:
        lines += ["## Recipe", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)
