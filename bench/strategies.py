"""How much of the pretrained network to train: every transfer strategy through one recipe, on the same data.

For one recipe, each strategy is the recipe with only the lines below changed (and ``output.dir``), run by
``mtl.run``'s own code and tested on the recipe's test split:

* ``backbone``: linear probe on the frozen-feature cache (the head's learning rate, up to 30 epochs, patience 3);
* ``top_k: 2``: the last two blocks and the head;
* ``LP-FT``: the probe first (``train.head_first_epochs``, the recipe's or 3), then everything;
* ``gradual``: ULMFiT gradual unfreezing, one more block every epoch after the head;
* ``LoRA``: r=8 adapters and the head, at the learning rate ``strategy: auto`` gives LoRA;
* ``none``: everything from the first step (no head-first epochs);
* ``BitFit``: the probe first, then the backbone's biases and the head (``mtl/strategies/bitfit.py``) at 1e-3;
* ``auto``: ``train.strategy=auto`` with the recipe's ``train.time_budget`` (or ``--time-budget``).

Prints a Markdown table (test accuracy, macro-F1, trainable parameters, wall time, the command) and writes every
run's summary as JSON after each run, so a stopped bench keeps what it measured::

    python bench/strategies.py recipes/sentiment.yaml --out sentiment-strategies.json
    python bench/strategies.py recipes/keywords.yaml data.source=../shared/data/speech-commands-v0.01-mini --only none LoRA
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from mtl.recipe import load_recipe
from mtl.runner import run_recipe
from mtl.config.sections import FINE_TUNING_RATE, HEAD_ONLY_RATE
from mtl.task.strategy import lora_learning_rate


def strategy_overrides(recipe_path: str, overrides: list[str], time_budget: float | None,
                       lora_targets: list[str] | None = None) -> dict[str, list[str]]:
    """Each strategy's ``key=value`` lines on top of the recipe's."""
    targets = f", target_modules: [{', '.join(lora_targets)}]" if lora_targets else ""
    train = load_recipe(recipe_path, overrides).train
    rate = train.learning_rate or FINE_TUNING_RATE
    probe_rate = train.head_learning_rate or max(rate, HEAD_ONLY_RATE)
    head_first = train.head_first_epochs or 3
    return {
        "backbone": ["model.freeze=backbone", "train.head_first_epochs=0", f"train.learning_rate={probe_rate:g}",
                     "train.head_learning_rate=null", f"train.epochs={max(train.epochs, 30):g}",
                     "train.early_stopping_patience=3"],
        "top_k: 2": ["model.freeze={top_k: 2}"],
        "LP-FT": ["model.freeze=none", f"train.head_first_epochs={head_first}"],
        "gradual": ["model.freeze={gradual: {every: 1}}", "train.head_first_epochs=0"],
        "LoRA": [f"model.freeze={{lora: {{r: 8, alpha: 16{targets}}}}}", "train.head_first_epochs=0",
                 f"train.learning_rate={lora_learning_rate(rate):g}"],
        "none": ["model.freeze=none", "train.head_first_epochs=0"],
        "BitFit": ["model.freeze=bitfit", f"train.head_first_epochs={head_first}",
                   f"train.learning_rate={max(rate, HEAD_ONLY_RATE):g}"],
        "auto": ["train.strategy=auto", *([f"train.time_budget={time_budget:g}"] if time_budget else [])],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--only", nargs="+", help="run only these strategies (names as in the table)")
    parser.add_argument("--time-budget", type=float, help="train.time_budget (minutes) for the auto row")
    parser.add_argument("--lora-targets", nargs="+", help="the LoRA row's target_modules (default: the family's)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here (after every run)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    strategies = strategy_overrides(args.recipe, args.overrides, args.time_budget, args.lora_targets)
    unknown = set(args.only or []) - set(strategies)
    if unknown:
        parser.error(f"--only: unknown strategies {sorted(unknown)}; choose from {list(strategies)}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, lines in strategies.items():
            if args.only and name not in args.only:
                continue
            folder = f"{tmp}/{len(results)}"
            command = " ".join(["python -m mtl.run", args.recipe, *args.overrides, *(f"'{x}'" if " " in x else x
                                                                                        for x in lines)])
            started = time.perf_counter()
            summary = run_recipe(load_recipe(args.recipe, [*args.overrides, *lines, f"output.dir={folder}"]))
            row = {"strategy": name, "command": command, "wall_seconds": time.perf_counter() - started,
                   "accuracy": summary["test"].get("accuracy"), "macro_f1": summary["test"].get("macro_f1"),
                   "trainable_parameters": summary["trainable_parameters"],
                   "total_parameters": summary["total_parameters"], "freeze": summary["freeze"],
                   "chosen": (summary.get("strategy") or {}).get("name"), "train_seconds": summary["train_seconds"]}
            results.append(row)
            print(f"{name}: accuracy {row['accuracy']:.4f}, macro-F1 {row['macro_f1']:.4f}, "
                  f"{row['trainable_parameters']:,} trainable, {row['wall_seconds']:.0f} s", flush=True)
            if args.out:
                args.out.write_text(json.dumps({"recipe": args.recipe, "overrides": args.overrides,
                                                "results": results}, indent=2))
    print(markdown_table(results))


def markdown_table(results: list[dict]) -> str:
    """The bench's rows as the Markdown table of ``bench/README.md``."""
    lines = ["| strategy | test accuracy | macro-F1 | trainable parameters | wall time | command |",
             "|---|---|---|---|---|---|"]
    for row in results:
        chosen = f" (chose {row['chosen']})" if row.get("chosen") else ""
        share = row["trainable_parameters"] / row["total_parameters"]
        lines.append(f"| {row['strategy']}{chosen} | {row['accuracy']:.2%} | {row['macro_f1']:.4f} | "
                     f"{row['trainable_parameters']:,} ({share:.2%}) | {row['wall_seconds']:.0f} s | "
                     f"`{row['command']}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
