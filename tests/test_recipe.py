"""Recipes: validation messages, overrides and the shipped recipe files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtl.errors import MtlError, RecipeError
from mtl.recipe import load_recipe, recipe_from_dict

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
MINIMAL = {"task": "text-sentiment", "data": {"source": "some.csv"}}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_validate_and_open_with_their_command(path):
    first = path.read_text().splitlines()[0]
    command = f"# python -m mtl.run recipes/{path.name}"
    assert first == command or first.startswith(command + " ")
    overrides = first[len(command):].split()  # e.g. data.source=/path/to/folder for recipes on the user's data
    assert all("=" in item for item in overrides), first
    recipe = load_recipe(path, overrides)
    assert recipe.output.dir


def test_misspelled_key_gives_one_line_with_the_right_spelling():
    with pytest.raises(RecipeError) as info:
        recipe_from_dict({**MINIMAL, "train": {"epoch": 3}})
    message = str(info.value)
    assert "\n" not in message
    assert "train.epoch: unknown key; did you mean 'epochs'?" in message
    with pytest.raises(RecipeError, match="epochs: unknown key; did you mean 'train.epochs'"):
        recipe_from_dict({**MINIMAL, "epochs": 2})  # `epochs=2` on the command line: a key of a section
    with pytest.raises(RecipeError, match="train.lr: unknown key; did you mean 'learning_rate'"):
        recipe_from_dict({**MINIMAL, "train": {"lr": 1e-3}})  # what other libraries call it


def test_wrong_type_names_the_expected_type():
    with pytest.raises(RecipeError, match=r"train.batch_size: expected an integer, got 'big' \(str\)"):
        recipe_from_dict({**MINIMAL, "train": {"batch_size": "big"}})
    with pytest.raises(RecipeError, match=r"train.epochs: expected a number, got '3' \(str\); write the number without quotes"):
        recipe_from_dict({**MINIMAL, "train": {"epochs": "3"}})  # a quoted number, or fit(epochs="3"), is text
    assert recipe_from_dict({**MINIMAL, "train": {"batch_size": "1e3"}}).train.batch_size == 1000  # YAML reads 1e3 as text
    with pytest.raises(RecipeError, match=r"train.batch_size: expected an integer, got '2.5e0' \(str\); give a whole"):
        recipe_from_dict({**MINIMAL, "train": {"batch_size": "2.5e0"}})
    with pytest.raises(RecipeError, match=r"train.epochs: expected a number, got '1e400' \(str\); give a finite"):
        recipe_from_dict({**MINIMAL, "train": {"epochs": "1e400"}})
    with pytest.raises(RecipeError, match=r"train.time_budget: expected a number, got 'inf' \(str\); give a finite"):
        recipe_from_dict({**MINIMAL, "train": {"time_budget": "inf"}})  # what `train.time_budget=inf` gives
    with pytest.raises(RecipeError, match=r"train.class_weights.pos: expected a number, got 'abc' \(str\)"):
        recipe_from_dict({**MINIMAL, "train": {"class_weights": {"pos": "abc", "neg": 1}}})  # the entry, not "a mapping"
    with pytest.raises(RecipeError, match=r"model.pooling: must be one of .*got 'MEAN' \(str\); did you mean 'mean'"):
        recipe_from_dict({**MINIMAL, "model": {"pooling": "MEAN"}})
    with pytest.raises(RecipeError, match=r"data.label_names\[0\]: expected a string, got 1 \(int\)"):
        recipe_from_dict({**MINIMAL, "data": {**MINIMAL["data"], "label_names": [1, 0]}})
    with pytest.raises(RecipeError, match=r"label_names names 'neg' more than once; each label must be named once"):
        recipe_from_dict({**MINIMAL, "data": {**MINIMAL["data"], "label_names": ["neg", "neg", "pos"]}})
    for written in ("1e-4", "1.0e-4", "+2E3"):  # what PyYAML leaves as text is still read as the number it is
        assert recipe_from_dict({**MINIMAL, "train": {"learning_rate": written}}).train.learning_rate == float(written)


def test_all_problems_are_collected_into_one_error():
    raw = {"task": "text-sentimnt", "data": {"source": "x.csv", "validation_size": 3},
           "train": {"mixed_precision": "bf17", "batch_size": 0}, "model": {"freeze": "bacbone"}, "extra": 1}
    with pytest.raises(RecipeError) as info:
        recipe_from_dict(raw)
    problems = info.value.problems
    joined = "\n".join(problems)
    assert len(problems) == 6, joined
    for expected in ("did you mean 'text-sentiment'", "validation_size must be a fraction", "did you mean 'bf16'",
                     "batch_size must be at least 1", "unknown freezing spec 'bacbone'", "extra: unknown key"):
        assert expected in joined


def test_overrides_are_typed_and_nested():
    recipe = recipe_from_dict(MINIMAL, ["train.epochs=1", "model.freeze={top_k: 2}", "preprocess.max_length=32",
                                        "train.mixed_precision=bf16", "data.limit_per_class=5"])
    assert recipe.train.epochs == 1.0 and isinstance(recipe.train.epochs, float)
    assert recipe.freeze_spec.mode == "top_k" and recipe.freeze_spec.top_k == 2
    assert recipe.preprocess.max_length == 32 and recipe.to_dict()["preprocess"] == {"max_length": 32}
    assert recipe.train.mixed_precision == "bf16"
    assert recipe.data.limit_per_class == 5
    assert recipe_from_dict(MINIMAL, ["train.learning_rate=1e-4"]).train.learning_rate == 1e-4


def test_an_override_below_a_plain_value_shows_how_to_give_the_whole_value():
    with pytest.raises(RecipeError, match=r"override 'model.freeze.top_k=2': model.freeze is a value \('none'\), not a "
                                          r"section of keys; give the whole value instead, e.g. model.freeze=\{top_k: 2\}"):
        recipe_from_dict({**MINIMAL, "model": {"freeze": "none"}}, ["model.freeze.top_k=2"])
    with pytest.raises(RecipeError, match=r"e.g. model.freeze=\{lora: \{r: 4\}\}"):
        recipe_from_dict({**MINIMAL, "model": {"freeze": "none"}}, ["model.freeze.lora.r=4"])


def test_override_of_unknown_key_is_an_error():
    with pytest.raises(RecipeError, match="train.learnig_rate: unknown key; did you mean 'learning_rate'"):
        recipe_from_dict(MINIMAL, ["train.learnig_rate=0.1"])
    with pytest.raises(RecipeError, match="write it as key.sub=value"):
        recipe_from_dict(MINIMAL, ["train.epochs"])


def test_a_problem_from_an_override_names_the_override_not_only_the_file():
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict({**MINIMAL, "train": {"epochs": "many"}}, ["train.batch_size=big", "train.epochs=2"],
                         source="recipe.yaml")
    problems = caught.value.problems
    assert problems == ["train.batch_size: expected an integer, got 'big' (str) (from the command line: "
                        "train.batch_size=big)"], problems  # the file's own bad epochs were overridden
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict({**MINIMAL, "train": {"epochs": "many"}}, ["train.batch_size=8"], source="recipe.yaml")
    assert caught.value.problems[0].startswith("train.epochs: ") and "command line" not in str(caught.value)


def test_each_problem_of_a_section_names_its_own_override():
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict({**MINIMAL, "train": {"warmup_ratio": 2.0}}, ["train.batch_size=0", "train.epochs=-1"])
    message = caught.value.problems[0]
    assert "batch_size must be at least 1, got 0 (from the command line: train.batch_size=0)" in message
    assert "epochs must be a positive number, got -1.0 (from the command line: train.epochs=-1)" in message
    assert "warmup_ratio must be in [0, 1), got 2.0" in message and message.count("command line") == 2


def test_mlp_settings_on_a_linear_head_are_an_error_not_ignored():
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(MINIMAL, ["model.head.hidden=[512]"])
    assert caught.value.problems == ["model.head: hidden applies to an MLP head only; add type: mlp "
                                     "(model.head.type=mlp) or remove it (from the command line: "
                                     "model.head.hidden=[512])"]
    with pytest.raises(RecipeError, match=r"dropout applies .* \(from the command line: model.head.dropout=0.3\)"):
        recipe_from_dict(MINIMAL, ["model.head.dropout=0.3", "model.head.type=linear"])
    with pytest.raises(RecipeError, match="model.head: activation, dropout apply to an MLP head only"):
        recipe_from_dict({**MINIMAL, "model": {"head": {"type": "linear", "activation": "gelu", "dropout": 0.1}}})
    old = {"type": "linear", "hidden": [1024], "activation": "relu", "dropout": 0.0}  # what recipes saved until now hold
    assert recipe_from_dict({**MINIMAL, "model": {"head": old}}).model.head.hidden is None
    mlp = recipe_from_dict(MINIMAL, ["model.head.type=mlp"]).model.head
    assert (mlp.hidden, mlp.activation, mlp.dropout) == ([1024], "relu", 0.0)  # the MLP's defaults
    assert recipe_from_dict(MINIMAL, ["model.head={type: mlp, hidden: [64, 32]}"]).model.head.hidden == [64, 32]


def test_metric_for_best_must_be_computed():
    with pytest.raises(RecipeError, match="metric_for_best: 'macro_f1' is not computed"):
        recipe_from_dict({**MINIMAL, "metrics": ["accuracy"], "train": {"metric_for_best": "macro_f1"}})


def test_task_options_are_validated_by_the_task():
    with pytest.raises(RecipeError, match="preprocess.max_len: unknown key; did you mean 'max_length'"):
        recipe_from_dict({**MINIMAL, "preprocess": {"max_len": 3}})


def test_data_needs_source_or_files():
    with pytest.raises(RecipeError, match="give `source`"):
        recipe_from_dict({"task": "text-sentiment"})


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: text-sentiment\ntrain: {epochs: 3\n")
    with pytest.raises(RecipeError, match="not valid YAML at line"):
        load_recipe(path)


def test_an_empty_or_non_utf8_recipe_file_is_one_message(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(RecipeError, match="the file is empty .*a recipe needs at least `task` and `data.source`"):
        load_recipe(empty)
    for name, data in [("latin.yaml", "task: text-sentiment  # café\n".encode("latin-1")),
                       ("notepad.yaml", "task: text-sentiment\n".encode("utf-16")),
                       ("data.parquet", bytes(range(256)))]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MtlError, match=f"recipe .*{name}: not UTF-8 text .* save it as UTF-8"):
            load_recipe(tmp_path / name)


def test_resolved_recipe_round_trips_through_yaml():
    recipe = recipe_from_dict(MINIMAL, ["train.epochs=2"])
    again = recipe_from_dict(yaml.safe_load(recipe.to_yaml()))
    assert again == recipe


def test_yes_no_on_off_stay_words_and_true_false_stay_booleans(tmp_path):
    path = tmp_path / "kw.yaml"
    path.write_text("task: keyword-spotting\ndata: {source: clips, keywords: [yes, no, on, off, stop]}\n"
                    "train: {group_by_length: false, cpu: True}\n")
    recipe = load_recipe(path, ["preprocess.augment=false"])
    assert recipe.data.keywords == ["yes", "no", "on", "off", "stop"]
    assert recipe.train.group_by_length is False and recipe.train.cpu is True
    assert recipe.preprocess.augment is False


def test_resume_names_the_changed_keys_and_allows_harmless_ones(tmp_path):
    from mtl.errors import MtlError
    from mtl.publish.output_dir import RECIPE_FILE
    from mtl.runner.run import prepare_run

    out = tmp_path / "run"
    out.mkdir()
    started = recipe_from_dict(MINIMAL, [f"output.dir={out}", "train.learning_rate=5e-5"])
    (out / RECIPE_FILE).write_text(yaml.safe_dump(started.to_dict()))
    changed = recipe_from_dict(MINIMAL, [f"output.dir={out}", "train.learning_rate=1e-3", "train.num_workers=2",
                                         "train.epochs=4"])
    with pytest.raises(MtlError, match=r"--resume: .*\(train.epochs: 3 -> 4; train.learning_rate: 5e-05 -> 0.001\); "
                                       r".* --overwrite"):
        prepare_run(changed, resume=True)
    harmless = recipe_from_dict(MINIMAL, [f"output.dir={out}", "train.learning_rate=5e-5", "train.num_workers=2",
                                          "train.log_every=5", "compare.label_fractions=[0.5]"])  # trains after
    with pytest.raises(MtlError) as caught:  # past the recipe check: this folder has no checkpoints to resume
        prepare_run(harmless, resume=True)
    assert "differs" not in str(caught.value) and "checkpoints" in str(caught.value)
