"""A catalogue of mistakes users make, across the commands, the three modalities and the Python API: each one is
one clear message naming the field, file or row, exit code 2 on the command line, and never a traceback.

Commands run in-process (``main(argv)``), so the catalogue stays fast; tests/test_cli.py runs real subprocesses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from PIL import Image

from conftest import make_sentences
from mtl.errors import MtlError


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_bert):
    """Files a user has: a good CSV and recipe, a tiny checkpoint, broken copies of both, images and clips."""
    root = tmp_path_factory.mktemp("world")
    pd.DataFrame(make_sentences(80)).to_csv(root / "reviews.csv", index=False)
    (root / "empty.csv").write_text("")
    (root / "no-header.tsv").write_text("a gorgeous, moving film\t1\nflat and dull\t0\n")
    (root / "label-lists.jsonl").write_text("".join(json.dumps({"text": r["sentence"], "label": [i % 2]})
                                                    + "\n" for i, r in enumerate(make_sentences(20))))
    (root / "nested.jsonl").write_text("".join(json.dumps({"text": {"body": r["sentence"]}, "label": r["sentiment"]})
                                               + "\n" for r in make_sentences(20)))
    (root / "short-no-header.tsv").write_text("dull\t0\nfine film\t1\n")
    (root / "wrapped.json").write_text(json.dumps({"version": 1, "data": [{"text": r["sentence"], "label": r["sentiment"]}
                                                                          for r in make_sentences(20)]}))
    (root / "columnar.json").write_text(json.dumps({"text": [r["sentence"] for r in make_sentences(20)],
                                                    "label": [r["sentiment"] for r in make_sentences(20)]}))
    (root / "header-only.csv").write_text("sentence,sentiment\n")
    (root / "semicolons.csv").write_text("sentence;sentiment\ngood film;pos\nbad, dull film;neg\nfine;pos\n")
    (root / "unquoted.csv").write_text("sentence,sentiment\n" + "".join(f"{r['sentence']}, really,{r['sentiment']}\n"
                                                                    for r in make_sentences(40)))
    (root / "mixed.jsonl").write_text("".join(json.dumps({"sentence": r["sentence"], "label": label})
                                              for r, label in zip(make_sentences(40), ["1", 0] * 20)
                                              for _ in [0]).replace("}{", "}\n{"))
    pd.DataFrame({"sentence": ["good film", "great film", "fine film"], "sentiment": ["pos"] * 3}).to_csv(
        root / "one-class.csv", index=False)
    pd.DataFrame({"words": ["good", "bad"] * 10, "sentiment": ["pos", "neg"] * 10}).to_csv(root / "no-text.csv", index=False)
    pd.DataFrame({"sentence": ["good", "bad"] * 10, "label": [0, 1] * 10}).to_csv(root / "int-labels.csv", index=False)
    for name, change in (("bad-config", lambda f: (f / "config.json").write_text("{not json")),
                         ("no-config", lambda f: (f / "config.json").unlink()),
                         ("truncated", lambda f: (f / "model.safetensors").write_bytes(
                             (f / "model.safetensors").read_bytes()[:200]))):
        shutil.copytree(tiny_bert, root / name)
        change(root / name)
    images = root / "images"
    for label, colour in (("red", (200, 0, 0)), ("blue", (0, 0, 200))):
        (images / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (16, 16), colour).save(images / label / f"{i}.png")
    Image.new("RGB", (1, 1)).save(images / "red" / "dot.png")
    clips = root / "clips"
    for label in ("yes", "no"):
        (clips / label).mkdir(parents=True)
        for i in range(3):
            sf.write(clips / label / f"s{i}_nohash_0.wav", np.zeros(1600, np.float32), 16_000)
    sf.write(clips / "no" / "silent_nohash_9.wav", np.zeros(0, np.float32), 16_000)
    pd.DataFrame({"path": [f"clips/{label}/s{i}_nohash_0.wav" for label in ("yes", "no") for i in range(3)],
                  "label": [0, 0, 0, 1, 1, 1]}).to_csv(root / "clip-numbers.csv", index=False)
    recipe = {"task": "text-sentiment", "model": {"checkpoint": str(tiny_bert)}, "data": {"source": str(root / "reviews.csv")},
              "preprocess": {"max_length": 32}, "train": {"epochs": 1, "batch_size": 16},
              "output": {"dir": str(root / "out")}}
    (root / "recipe.yaml").write_text("# python -m mtl.run recipe.yaml\n" + yaml.safe_dump(recipe))
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "broken.yaml").write_text("task: [unclosed\n")
    (root / "twice.yaml").write_text("task: text-sentiment\ntrain:\n  epochs: 1\n  epochs: 2\n")
    (root / "user-folder").mkdir()
    (root / "user-folder" / "thesis.docx").write_text("years of work")
    (root / "a-file").write_text("not a folder")
    return root


def fails_cleanly(capsys, main, argv, *fragments):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len([line for line in err.splitlines() if line.startswith("error: ")]) == 1, err
    for fragment in fragments:
        assert fragment in err, err


RUN_CASES = [  # (extra arguments, fragments of the one message); "{w}" is the world folder
    (["{w}/nope.yaml"], ["cannot read recipe"]),
    (["{w}/broken.yaml"], ["not valid YAML at line"]),
    (["{w}/twice.yaml"], ["line 4", "the key 'epochs' is given twice in one section"]),
    (["{w}/recipe.yaml", "train.epochs=1", "train.epochs=2"], ["override train.epochs: given 2 times; keep one"]),
    (["{w}/list.yaml"], ["a recipe is a mapping"]),
    (["{w}/recipe.yaml", "trian.epochs=1"], ["unknown key", "did you mean 'train'"]),
    (["{w}/recipe.yaml", "task=text-sentimnt"], ["did you mean 'text-sentiment'"]),
    (["{w}/recipe.yaml", "train.epochs=many"], ["train.epochs: expected a number"]),
    (["{w}/recipe.yaml", "train.learning_rate=.nan"], ["learning_rate must be a finite number above 0"]),
    (["{w}/recipe.yaml", "train.learning_rate=-0.001"], ["learning_rate must be a finite number above 0"]),
    (["{w}/recipe.yaml", "train.batch_size=0"], ["batch_size must be at least 1"]),
    (["{w}/recipe.yaml", "train.warmup_ratio=1.5"], ["warmup_ratio must be in [0, 1)"]),
    (["{w}/recipe.yaml", "train.save_every_steps=0"], ["save_every_steps must be at least 1"]),
    (["{w}/recipe.yaml", "train.lr_decay=1.5"], ["lr_decay must be in (0, 1]"]),
    (["{w}/recipe.yaml", "train.max_seconds=-5"], ["max_seconds must be a finite number above 0"]),
    (["{w}/recipe.yaml", "train.strategy=automatic"], ["train.strategy"]),
    (["{w}/recipe.yaml", "train.time_budget=0"], ["time_budget must be a finite number above 0"]),
    (["{w}/recipe.yaml", "compare.scratch_time_multiple=0"], ["scratch_time_multiple must be a number above 0"]),
    (["{w}/recipe.yaml", "model.freeze={lora: {r: 0}}"], ["lora r (the rank) must be a positive integer"]),
    (["{w}/recipe.yaml", "model.freeze={gradual: {every: 0}}"], ["gradual every", "must be a positive integer"]),
    (["{w}/recipe.yaml", "model.freeze={lora: {rank: 8}}"], ["lora has no setting ['rank']"]),
    (["{w}/recipe.yaml", "model.freeze={gradual:{every:1}}"], ["YAML needs a space after each colon",
                                                               "'model.freeze={gradual: {every: 1}}'"]),
    (["{w}/recipe.yaml", "model.freeze={lora: {target_modules: [qkv]}}"], ["target_modules: ['qkv'] match no", "'query'"]),
    (["{w}/recipe.yaml", "train.label_smoothing=1"], ["label_smoothing must be in [0, 1)"]),
    (["{w}/recipe.yaml", "train.class_weights={pos: -1}"], ["class_weights must map labels to finite weights"]),
    (["{w}/recipe.yaml", "train.class_weights={postive: 2}"], ["train.class_weights names ['postive']", "the labels are"]),
    (["{w}/recipe.yaml", "model.freeze=partly"], ["model.freeze", "unknown freezing spec"]),
    (["{w}/recipe.yaml", "model.freeze={top_k: 0}"], ["top_k must be a positive integer"]),
    (["{w}/recipe.yaml", "model.freeze={top_k: 9}"], ["has only 2 blocks"]),
    (["{w}/recipe.yaml", "model.freeze={patterns: ['*']}"], ["freeze the new classification head", "must train"]),
    (["{w}/recipe.yaml", "train.learning_rate=1e30", "train.max_grad_norm=null", "train.warmup_ratio=0"],
     ["loss became NaN or infinite at step", "no model was saved"]),
    (["{w}/recipe.yaml", "data.source=null"], ["data: give `source`"]),
    (["{w}/recipe.yaml", "data.source={w}/missing.csv"], ["does not exist"]),
    (["{w}/recipe.yaml", "data.source=null", "data.files={train: {w}/gone.csv}"], ["data.files.train", "does not exist"]),
    (["{w}/recipe.yaml", "data.source={w}/empty.csv"], ["empty.csv"]),
    (["{w}/recipe.yaml", "data.source={w}/header-only.csv"], ["header-only.csv has a header but no rows"]),
    (["{w}/recipe.yaml", "data.source={w}/semicolons.csv"], ["semicolons.csv: its header is separated by semicolons",
                                                             "sep=';'"]),
    (["{w}/recipe.yaml", "data.source={w}/unquoted.csv"], ["unquoted.csv: 40 rows hold more fields than the header's 2",
                                                           "row 1 (line 2) has 3", "must be quoted"]),
    (["{w}/recipe.yaml", "data.source={w}/no-header.tsv"], ["no-header.tsv: its first line ('a gorgeous, moving film",
                                                             "looks like an example, not a header", "text<TAB>label"]),
    (["{w}/recipe.yaml", "data.source={w}/label-lists.jsonl"], ["the label column 'label' holds lists (e.g. [0])",
                                                                "give each row one label"]),
    (["{w}/recipe.yaml", "data.source={w}/nested.jsonl"], ["nested.jsonl) row 1: the input is an object ({'body': ",
                                                           "not a text", "json_normalize"]),
    (["{w}/recipe.yaml", "data.source={w}/short-no-header.tsv"], ["its first line ('dull\\t0') looks like an example"]),
    (["{w}/recipe.yaml", "data.source={w}/wrapped.json"], ["the records are wrapped in the field 'data'"]),
    (["{w}/recipe.yaml", "data.source={w}/columnar.json"], ["one record whose every value is a list",
                                                            "orient='records'"]),
    (["{w}/recipe.yaml", "data.source={w}/mixed.jsonl"],
     ["mixed.jsonl): column 'label' mixes value types from row to row (row 1: str, row 2: int in mixed.jsonl)"]),
    (["{w}/recipe.yaml", "data.label_names=[neg, neg]"], ["label_names names 'neg' more than once"]),
    (["{w}/recipe.yaml", "data.source={w}/one-class.csv"], ["only one label ('pos')"]),
    (["{w}/recipe.yaml", "data.source={w}/no-text.csv"], ["cannot tell which column is the input", "data.input_column"]),
    (["{w}/recipe.yaml", "data.input_column=review"], ["data.input_column: train has no column 'review'"]),
    (["{w}/recipe.yaml", "data.source={w}/int-labels.csv", "data.label_names=[neg, pos, neutral]"],
     ["data.label_names names 3 labels", "'neutral'"]),
    (["{w}/recipe.yaml", "data.validation_size=1.5"], ["validation_size must be a fraction"]),
    (["{w}/recipe.yaml", "model.checkpoint={w}/no-such-model"], ["does not exist"]),
    (["{w}/recipe.yaml", "model.checkpoint={w}/no-config"], ["has no config.json"]),
    (["{w}/recipe.yaml", "model.checkpoint={w}/bad-config"], ["config.json"]),
    (["{w}/recipe.yaml", "model.checkpoint=not a valid/hub//id"], ["checkpoint"]),
    (["{w}/recipe.yaml", "output.dir={w}/a-file"], ["is a file"]),
    *([(["{w}/recipe.yaml", "output.dir=/proc/mtl-out", "--dry-run"],  # os.access says root may write anywhere
        ["output.dir /proc/mtl-out: cannot write in /proc"])] if Path("/proc/self").is_dir() else []),
    (["{w}/recipe.yaml", "output.dir={w}/user-folder", "--overwrite"], ["mtl did not write it"]),
    (["{w}/recipe.yaml", "--overwrite", "--resume"], ["contradict each other"]),
    (["{w}/recipe.yaml", "output.dir={w}/user-folder", "--resume"], ["user-folder is not a run folder of mtl"]),
    (["{w}/recipe.yaml", "output.dir={w}/no-such-run", "--resume"], ["no-such-run does not exist; set output.dir"]),
    (["{w}/recipe.yaml", "metrics=[accuracy, f1_macro]"], ["'f1_macro' is not built in"]),
    (["{w}/recipe.yaml", "train.metric_for_best=f1"], ["train.metric_for_best: 'f1' is not computed"]),
    (["{w}/recipe.yaml", "hub.push=true"], ["hub.repo_id: hub.push is true but no repo_id"]),
    (["{w}/recipe.yaml", "--push-to-hub", "a/b/c"], ["not a Hub repository id"]),
    (["{w}/recipe.yaml", "preprocess.max_length=500"], ["more than the 64 tokens"]),
    (["{w}/recipe.yaml", "preprocess.max_len=32"], ["did you mean 'max_length'"]),
    (["{w}/recipe.yaml", "task=image-classification", "model.checkpoint=null", "data.source={w}/images",
      "preprocess={}"], ["dot.png", "images need at least 8x8"]),
    (["{w}/recipe.yaml", "data.source={w}/images", "data.input_column=image"],
     ["the input column holds images (", "not texts", "ImageClassification, recipes/flowers.yaml"]),
    (["{w}/recipe.yaml", "data.source={w}/clips", "data.input_column=audio"], ["the input column holds audio clips"]),
    (["{w}/recipe.yaml", "task=keyword-spotting", "data.source={w}/clips", "preprocess={}"],
     ["silent_nohash_9.wav", "audio files cannot be read"]),
    (["{w}/recipe.yaml", "task=keyword-spotting", "data.source={w}/clip-numbers.csv", "data.keywords=[yes]",
      "preprocess={}"], ["data.keywords: the label column holds numbers; keywords need label names"]),
    (["{w}/recipe.yaml", "task=keyword-spotting", "data.source={w}/int-labels.csv", "data.input_column=sentence",
      "preprocess={}"], ["audio files cannot be read: good"]),
]


@pytest.mark.parametrize("argv, fragments", RUN_CASES, ids=[" ".join(c[0][1:]) or c[0][0] for c in RUN_CASES])
def test_run_command_rejects(world, capsys, argv, fragments):
    from mtl.run import main

    fails_cleanly(capsys, main, [a.replace("{w}", str(world)) for a in argv], *fragments)
    assert not (world / "out").exists()  # nothing written for a run that could not start


def test_truncated_weights_are_named(world, capsys):
    from mtl.run import main

    fails_cleanly(capsys, main, [world / "recipe.yaml", f"model.checkpoint={world / 'truncated'}"], "truncated")


def test_corrupt_training_checkpoint_on_resume_is_named(world, capsys, tmp_path):
    from mtl.run import main

    out = tmp_path / "run"
    (out / "checkpoints" / "epoch-0").mkdir(parents=True)
    (out / ".mtl-output").write_text("{}")
    (out / "checkpoints" / "epoch-0" / "trainer_state.json").write_text("{broken")
    shutil.copy(world / "recipe.yaml", tmp_path / "recipe.yaml")
    fails_cleanly(capsys, main, [world / "recipe.yaml", f"output.dir={out}", "--resume"], "trainer_state.json")


@pytest.fixture(scope="module")
def saved_text_model(world, tiny_bert):
    from mtl.tasks import TextSentiment

    task = TextSentiment(tiny_bert, max_length=16)
    task.fit(make_sentences(40), max_steps=2, batch_size=8)
    return task.save(world / "saved-text")


def test_predict_given_a_table_reads_its_input_column(saved_text_model):
    import pandas as pd
    from datasets import Dataset
    from mtl.tasks import TextSentiment

    task = TextSentiment.load(saved_text_model)
    texts = ["a fine film", "dull and long", "great", "awful acting", "so so"]
    expected = task.predict(texts)
    frame = pd.DataFrame({"Review": texts, "rating": [1, 0, 1, 0, 1]})  # iterating it gives column names
    assert task.predict(frame) == expected
    assert task.predict(Dataset.from_pandas(frame)) == expected
    assert task.predict(pd.DataFrame({"whatever": texts})) == expected  # one column: the inputs
    with pytest.raises(MtlError, match=r"cannot tell which column of the table holds the inputs \(columns: a, b;"):
        task.predict(pd.DataFrame({"a": texts, "b": texts}))


def test_predict_command_rejects(world, saved_text_model, capsys):
    from mtl.predict import main

    fails_cleanly(capsys, main, [world / "no-model", "good"], "no-model does not exist; give the output.dir of a run")
    fails_cleanly(capsys, main, [world / "user-folder", "good"], "no config.json")
    fails_cleanly(capsys, main, [saved_text_model, "good", "--batch-size", "0"], "--batch-size must be at least 1")
    fails_cleanly(capsys, main, [saved_text_model, world / "gone.txt"], "no such file or folder")
    fails_cleanly(capsys, main, [saved_text_model, "good", "--output", world / "p.xlsx"], "write to a .csv or .json")
    fails_cleanly(capsys, main, [saved_text_model, world / "no-text.csv", "--column", "txt"], "no input column named 'txt'")
    fails_cleanly(capsys, main, [saved_text_model, world / "empty.csv"], "empty.csv")
    fails_cleanly(capsys, main, [saved_text_model, world / "unquoted.csv"], "40 rows hold more fields than the header")
    (world / "tabs.tsv").write_text('text\n"a gorgeous\tmoving film"\n')  # TSV: quotes are text, as training reads
    fails_cleanly(capsys, main, [saved_text_model, world / "tabs.tsv"], "a TSV file is read GLUE-style")
    fails_cleanly(capsys, main, [saved_text_model, world / "images"], "no input files")
    fails_cleanly(capsys, main, [saved_text_model, "good", ""], "input 2: an empty argument (an unset shell variable?)")
    config = json.loads((saved_text_model / "config.json").read_text())
    assert config["mtl_task"] == "text-sentiment"


def test_detect_and_export_commands_reject(world, saved_text_model, capsys):
    from mtl.detect import main as detect
    from mtl.export import main as export

    fails_cleanly(capsys, detect, [saved_text_model, world / "nope.wav"], "does not exist")
    fails_cleanly(capsys, detect, [saved_text_model, world / "clips" / "yes" / "s0_nohash_0.wav", "--threshold", "2"],
                  "--threshold must be in (0, 1]")
    fails_cleanly(capsys, detect, [saved_text_model, world / "clips" / "yes" / "s0_nohash_0.wav"],
                  "cannot detect events")
    fails_cleanly(capsys, export, [world / "no-model", "--onnx"], "no-model does not exist")


def test_python_api_rejects(world, saved_text_model, tiny_bert):
    from mtl.tasks import ImageClassification, KeywordSpotting, TextSentiment

    fresh = TextSentiment(tiny_bert, max_length=16)
    with pytest.raises(MtlError, match="no trained model yet"):
        fresh.predict(["good"])
    with pytest.raises(MtlError, match="did you mean 'epochs'"):
        fresh.fit(make_sentences(20), epoch=1)
    with pytest.raises(MtlError, match="unknown option 'max_len'"):
        TextSentiment(tiny_bert, max_len=3)
    with pytest.raises(MtlError, match="pass one split"):
        from datasets import Dataset, DatasetDict

        fresh.fit(DatasetDict({"train": Dataset.from_list(make_sentences(10))}))
    with pytest.raises(MtlError, match="only one label"):
        fresh.fit({"text": ["a good film"] * 4, "label": ["pos"] * 4})
    text = TextSentiment.load(saved_text_model)
    assert len(text.predict("a good film")) == 1  # a bare string is one input
    for bad, message in ((None, "got None"), ([], "empty list"), ([None], "input 1: expected a non-empty text"),
                         (["  "], "an empty text"), ([3.5], "a float")):
        with pytest.raises(MtlError, match=message):
            text.predict(bad)
    with pytest.raises(MtlError, match="batch_size must be"):
        text.predict(["good"], batch_size=0)
    with pytest.raises(MtlError, match=r"evaluate data row 1: label .meh. is not among the model.s labels"):
        text.evaluate({"text": ["good film"], "label": ["meh"]})
    image = ImageClassification()
    image.label_names, image.model = ["a", "b"], object()  # predict checks inputs before the model runs
    for bad, message in ((np.full((16, 16, 3), np.nan), "NaN"), (np.zeros((1, 1, 3), np.uint8), "1x1 pixels"),
                         ([world / "missing.png"], r"input 1 \(.*missing\.png\): does not exist; check the path")):
        with pytest.raises(MtlError, match=message):
            image.inputs_to_dataset(bad if isinstance(bad, list) else [bad])
    with pytest.raises(MtlError, match="has no samples"):
        from mtl.data.audio import load_clip

        load_clip(np.zeros(0, np.float32), 16_000, 16_000, where="input 1")
    with pytest.raises(MtlError, match="NaN or infinite"):
        load_clip(np.full(100, np.inf, np.float32), 16_000, 16_000, where="input 1")
    for given, message in (({"array": np.zeros(800)}, "needs 'sampling_rate'"),
                           ({"array": np.zeros(800), "sampling_rate": "8000"}, r"must be a number of Hz above 0, got "
                                                                                r"'8000' \(str\)")):
        with pytest.raises(MtlError, match=message):
            load_clip(given, 16_000, 16_000, where="input 1")
    with pytest.raises(MtlError, match="clip_seconds must be in"):
        KeywordSpotting(clip_seconds=0)


def test_a_checkpoint_of_another_modality_is_named_as_such(tiny_bert, tmp_path):
    from mtl.errors import CheckpointError
    from mtl.tasks import ImageClassification, KeywordSpotting, TextSentiment
    from test_image_classification import build_model

    with pytest.raises(CheckpointError, match=r"is a text model \(bert\); this task classifies image inputs, so it "
                                              r"needs an image checkpoint such as timm/"):
        ImageClassification(tiny_bert).prepare()
    with pytest.raises(CheckpointError, match=r"is a text model \(bert\); this task classifies audio inputs"):
        KeywordSpotting(tiny_bert).prepare()
    with pytest.raises(CheckpointError, match=r"is an image model \(resnet\); this task classifies text inputs"):
        TextSentiment(build_model("resnet", tmp_path / "resnet")).prepare()


def test_the_saved_tokenizer_cuts_texts_where_predict_does_and_training_on_may_read_more(saved_text_model):
    import json
    from transformers import pipeline
    from mtl.tasks import TextSentiment

    assert json.loads((saved_text_model / "tokenizer_config.json").read_text())["model_max_length"] == 16
    long = " ".join(["good", "bad", "film", "fine"] * 30)  # 120 words, cut to 16 tokens by mtl
    task = TextSentiment.load(saved_text_model)
    classify = pipeline("text-classification", model=str(saved_text_model), top_k=None)
    scores = {row["label"]: row["score"] for row in classify([long], truncation=True)[0]}
    expected = task.predict_proba([long])[0]
    assert [scores[name] for name in task.label_names] == pytest.approx(expected.tolist(), abs=1e-5)
    TextSentiment(saved_text_model, max_length=64).prepare()  # the checkpoint's own 64 positions, not 16
    with pytest.raises(MtlError, match="more than the 64 tokens"):
        TextSentiment(saved_text_model, max_length=65).prepare()
