"""Does ranking on frozen features pick the checkpoint that fine-tunes best, and what does it cost?

For one recipe: every candidate is ranked with ``mtl.select`` (frozen features of a capped sample: linear probe,
k-NN, LogME), then fine-tuned with the recipe itself (only ``model.checkpoint`` and ``output.dir`` changed) and
tested. Prints, and writes as JSON: each candidate's scores, fine-tuned test accuracy and times; Kendall tau
between each score and the fine-tuned accuracy (scipy.stats.kendalltau); the ranking time against the time of
fine-tuning the recipe's default checkpoint once; whether the top-ranked candidate is within 1 point of the best.

    python bench/select_bench.py recipes/flowers.yaml data.source=../shared/data/flowers17 --out bench/results/flowers.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from scipy.stats import kendalltau

from mtl.recipe import load_recipe
from mtl.registry import get_task
from mtl.runner import run_recipe, select_checkpoint
from mtl.transferability import SCORES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--candidates", nargs="+", help="default: the task's checkpoints served offline")
    parser.add_argument("--finetune", nargs="*", help="fine-tune only these (default: every candidate)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    recipe = load_recipe(args.recipe, args.overrides)
    from mtl.sources.catalog import MIRRORS

    candidates = args.candidates or [c for c in get_task(recipe.task).spec.candidates if c in MIRRORS]
    with tempfile.TemporaryDirectory() as tmp:
        recipe.select.report_dir = f"{tmp}/selection"
        started, started_cpu = time.perf_counter(), time.process_time()
        selection = select_checkpoint(recipe, candidates=candidates)
        ranking_seconds, ranking_cpu = time.perf_counter() - started, time.process_time() - started_cpu
        print(selection.table())
        rows = {row["checkpoint"]: row for row in selection.rows}
        for checkpoint in args.finetune if args.finetune is not None else candidates:
            run = load_recipe(args.recipe, [*args.overrides, f"model.checkpoint={checkpoint}",
                                            f"output.dir={tmp}/{checkpoint.replace('/', '--')}"])
            begun, begun_cpu = time.perf_counter(), time.process_time()
            summary = run_recipe(run)
            rows[checkpoint].update(test_accuracy=summary["test"]["accuracy"],
                                    finetune_seconds=time.perf_counter() - begun,
                                    finetune_cpu_seconds=time.process_time() - begun_cpu)
            print(f"fine-tuned {checkpoint}: test accuracy {summary['test']['accuracy']:.4f} "
                  f"in {rows[checkpoint]['finetune_seconds']:.0f} s", flush=True)
    result = {"recipe": args.recipe, "overrides": args.overrides, "ranking_seconds": ranking_seconds,
              "ranking_cpu_seconds": ranking_cpu,
              "candidates": list(rows.values())}
    tuned = [row for row in rows.values() if "test_accuracy" in row]
    default = get_task(recipe.task).spec.default_checkpoint
    if len(tuned) >= 2:
        accuracy = [row["test_accuracy"] for row in tuned]
        result["kendall_tau"] = {s: float(kendalltau([row[s] for row in tuned], accuracy).statistic) for s in SCORES}
        best = max(accuracy)
        result["top_ranked_within_1_point"] = {s: max(tuned, key=lambda r: r[s])["test_accuracy"] >= best - 0.01
                                               for s in SCORES}
    if default in rows and "finetune_seconds" in rows[default]:
        result["ranking_over_default_finetune"] = ranking_seconds / rows[default]["finetune_seconds"]
        result["ranking_over_default_finetune_cpu"] = ranking_cpu / rows[default]["finetune_cpu_seconds"]
    print(json.dumps({k: v for k, v in result.items() if k != "candidates"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
