"""Text data: files of every format, column detection, label encoding, splits and few-shot limits."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, DatasetDict

from mtl.data import load_labelled
from mtl.data.labelled import encode_labels, labelled_split, limit_per_class
from mtl.errors import DataError
from mtl.config import DataConfig

from conftest import make_sentences

TEXT = dict(input_name="text", input_candidates=("text", "sentence"))


def write(rows, path):
    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":  # GLUE-style: tab-separated, no quoting
        path.write_text("\n".join("\t".join(map(str, row)) for row in [list(rows[0]), *[r.values() for r in rows]]) + "\n")
    elif path.suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_every_file_format_loads_with_auto_detected_columns(tmp_path, suffix):
    rows = make_sentences(100)
    rows[0]["sentence"] = '"quoted" start'  # TSV must not treat quotes specially
    path = write(rows, tmp_path / f"reviews{suffix}")
    data = load_labelled(DataConfig(source=str(path)), **TEXT)
    assert data.label_names == ["negative", "positive"]
    assert set(data.splits) == {"train", "validation", "test"}
    assert sum(len(s) for s in data.splits.values()) == 100
    assert data.splits["train"].column_names == ["text", "label"]
    assert isinstance(data.splits["train"].features["label"], ClassLabel)
    texts = set(data.splits["train"]["text"]) | set(data.splits["test"]["text"]) | set(data.splits["validation"]["text"])
    assert '"quoted" start' in texts


def test_missing_splits_are_carved_stratified_and_seeded(tmp_path):
    path = write(make_sentences(200), tmp_path / "r.csv")
    config = DataConfig(source=str(path), validation_size=0.2, test_size=0.1)
    first = load_labelled(config, **TEXT)
    again = load_labelled(config, **TEXT)
    assert len(first.splits["test"]) == 20 and len(first.splits["validation"]) == 36
    assert first.splits["test"]["text"] == again.splits["test"]["text"]
    labels = first.splits["validation"]["label"]
    assert labels.count(0) == labels.count(1)


def test_split_files_and_explicit_columns(tmp_path):
    rows = [{"review": r["sentence"], "stars": r["sentiment"], "extra": 1} for r in make_sentences(60)]
    files = {"train": write(rows[:40], tmp_path / "train.csv"), "validation": write(rows[40:50], tmp_path / "dev.csv"),
             "test": write(rows[50:], tmp_path / "test.csv")}
    config = DataConfig(files={k: str(v) for k, v in files.items()}, input_column="review", label_column="stars")
    data = load_labelled(config, **TEXT)
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == [40, 10, 10]
    folder = load_labelled(DataConfig(source=str(tmp_path), input_column="review", label_column="stars"), **TEXT)
    assert [len(folder.splits[s]) for s in ("train", "validation", "test")] == [40, 10, 10]


def test_integer_labels_get_names_from_the_recipe(tmp_path):
    rows = [{"text": r["sentence"], "label": int(r["sentiment"] == "positive")} for r in make_sentences(50)]
    path = write(rows, tmp_path / "r.csv")
    plain = load_labelled(DataConfig(source=str(path)), **TEXT)
    assert plain.label_names == ["0", "1"]
    named = load_labelled(DataConfig(source=str(path), label_names=["neg", "pos"]), **TEXT)
    assert named.label_names == ["neg", "pos"]
    first = named.splits["train"][0]
    assert (first["label"] == 1) == any(w in first["text"].split() for w in ("good", "great", "wonderful", "superb", "lovely", "brilliant"))


def test_unknown_column_names_the_columns(tmp_path):
    path = write([{"words": "a", "y": 1}, {"words": "b", "y": 0}], tmp_path / "r.csv")
    with pytest.raises(DataError, match=r"cannot tell which column is the input \(columns: words, y"):
        load_labelled(DataConfig(source=str(path)), **TEXT)
    with pytest.raises(DataError, match=r"data.input_column: train has no column 'txt' \(columns: words, y\); set "
                                        r"data.input_column to the one holding the inputs"):
        load_labelled(DataConfig(source=str(path), input_column="txt"), **TEXT)


def test_tables_that_are_not_utf8_are_named_as_such(tmp_path):
    (tmp_path / "latin.csv").write_bytes("text,label\ncafé au lait,1\nbad,0\n".encode("latin-1"))
    (tmp_path / "excel.tsv").write_bytes("text\tlabel\ngood\t1\nbad\t0\n".encode("utf-16"))
    for name in ("latin.csv", "excel.tsv"):
        with pytest.raises(DataError, match=f"{name}: not UTF-8 text .*save it as UTF-8"):
            load_labelled(DataConfig(source=str(tmp_path / name)), **TEXT)


def test_python_data_mistakes_are_named(tmp_path, tiny_bert):
    from mtl.tasks import TextSentiment

    task = TextSentiment(tiny_bert, max_length=16)
    with pytest.raises(DataError, match=r"validation data: file .*nope.csv does not exist"):
        task.fit(make_sentences(20), tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"train data: its columns have different lengths \(text: 3, label: 2\)"):
        task.fit({"text": ["a", "b", "c"], "label": [0, 1]})
    with pytest.raises(DataError, match=r"train data: got an empty list; pass at least one example"):
        task.fit([])
    with pytest.raises(DataError, match=r"train data: a list of 3 inputs holds no labels; .*\{'text': texts, "
                                        r"'label': labels\}"):
        task.fit(["good", "bad", "fine"], [1, 0, 1])


def test_in_memory_images_in_a_data_frame_load_and_a_column_of_mixed_kinds_is_named():
    import numpy as np

    from mtl.data.tables import to_dataset

    images = [np.full((8, 8, 3), i, dtype=np.uint8) for i in range(4)]
    table = to_dataset(pd.DataFrame({"image": images, "label": ["a", "b", "a", "b"]}), "train data")
    assert len(table) == 4 and np.asarray(table[2]["image"]).shape == (8, 8, 3)
    for data, column, first, other in [
            ({"text": ["x", "y", "z"], "label": ["pos", 1, "neg"]}, "label", "row 1 holds a text", "row 2 a number"),
            ([{"image": images[0], "label": 0}, {"image": "photo.jpg", "label": 1}], "image",
             "row 1 holds a 3-D array", "row 2 a text"),
            ({"audio": [{"array": np.zeros(4), "sampling_rate": 8000}, {"array": np.zeros((2, 4)), "sampling_rate": 8000}],
              "label": [0, 1]}, "audio", "row 1 holds a dict of array: a 1-D array", "row 2 a dict of array: a 2-D")]:
        with pytest.raises(DataError, match=rf"train data: column '{column}' mixes kinds of values: {first}.*{other}"):
            to_dataset(data, "train data")


def test_a_column_of_grey_and_colour_arrays_and_pil_images_loads_as_images():
    import numpy as np
    from PIL import Image

    from mtl.data.tables import to_dataset

    colour = np.zeros((8, 8, 3), dtype=np.uint8)
    colour[..., 0] = 200
    grey = np.full((8, 8), 0.5)  # float pixels in 0..1
    photo = Image.new("RGBA", (8, 8), (0, 0, 90, 255))
    table = to_dataset({"image": [colour, grey, photo, None], "label": [0, 1, 0, 1]}, "train data")
    decoded = [table[row]["image"] for row in range(3)]
    assert [image.mode for image in decoded] == ["RGB", "L", "RGBA"]
    assert np.asarray(decoded[0])[0, 0].tolist() == [200, 0, 0]
    assert np.asarray(decoded[1])[0, 0] == 128 and table[3]["image"] is None
    with pytest.raises(DataError, match=r"train data: column 'image', row 2: the float image holds values"):
        to_dataset({"image": [colour, np.full((8, 8), -3.0)], "label": [0, 1]}, "train data")


def test_empty_label_names_the_row(tmp_path):
    rows = make_sentences(10)
    rows[6]["sentiment"] = None
    with pytest.raises(DataError, match="train row 7: the label is empty"):
        load_labelled(DataConfig(source=str(write(rows, tmp_path / "r.csv"))), **TEXT)
    rows[9]["sentiment"] = None
    with pytest.raises(DataError, match=r"train rows 7, 10: the label is empty \(2 of 10 rows\)"):
        load_labelled(DataConfig(source=str(write(rows, tmp_path / "r.csv"))), **TEXT)


def test_fractional_number_labels_are_classes_named_as_written(tmp_path):
    rows = [{"sentence": f"review {i}", "score": [0.0, 1.0, 0.5][i % 3]} for i in range(30)]
    data = load_labelled(DataConfig(source=str(write(rows, tmp_path / "r.csv")), label_column="score",
                                    validation_size=0.2, test_size=0.2), **TEXT)
    assert data.label_names == ["0", "0.5", "1"]
    train = data.splits["train"]
    assert {data.label_names[label] for label in train["label"]} == {"0", "0.5", "1"}


def test_split_files_are_found_by_name_and_a_folder_of_nothing_readable_says_what_it_holds(tmp_path):
    named = tmp_path / "named"
    named.mkdir()
    write(make_sentences(20), named / "imdb_train.csv")
    write(make_sentences(8, seed=1), named / "Test_Data.csv")
    data = load_labelled(DataConfig(source=str(named), validation_size=0.25), **TEXT)
    assert len(data.splits["test"]) == 8 and len(data.splits["train"]) + len(data.splits["validation"]) == 20
    one = tmp_path / "one"
    one.mkdir()
    write(make_sentences(20), one / "reviews.csv")
    assert sum(map(len, load_labelled(DataConfig(source=str(one)), **TEXT).splits.values())) == 20
    write(make_sentences(8), named / "test-2.csv")
    with pytest.raises(DataError, match=r"holds 2 test files \(Test_Data.csv, test-2.csv\); keep one per split"):
        load_labelled(DataConfig(source=str(named)), **TEXT)
    run = one / "outputs" / "run1"  # a run's output folder written inside the data folder: not read, not refused
    run.mkdir(parents=True)
    (run / ".mtl-output").write_text("{}\n")
    (run / "confusion_matrix.png").write_bytes(b"\x89PNG")
    assert sum(map(len, load_labelled(DataConfig(source=str(one)), **TEXT).splits.values())) == 20
    write(make_sentences(8), one / "more.csv")
    with pytest.raises(DataError, match=r"holds tables \(more.csv, reviews.csv\) but no train file by name"):
        load_labelled(DataConfig(source=str(one)), **TEXT)
    phone = tmp_path / "phone"
    (phone / "yes").mkdir(parents=True)
    (phone / "yes" / "clip.m4a").write_bytes(b"\0" * 64)
    with pytest.raises(DataError, match=r"holds nothing mtl reads \(it holds only .m4a files\); .* or audio "
                                        r"\(.wav, .flac"):
        load_labelled(DataConfig(source=str(phone)), **TEXT)


def test_numbers_in_a_csv_that_reading_as_numbers_would_change_are_kept_as_written(tmp_path, caplog):
    table = tmp_path / "r.csv"  # labels "01" and "1" (one number), texts with leading zeros: pandas makes them ints
    table.write_text("text,label\n" + "".join(f"{['02134', '0089', '4567'][i % 3]}{i},{['01', '1', '2'][i % 3]}\n"
                                                for i in range(30)))
    with caplog.at_level("WARNING", logger="mtl"):
        data = load_labelled(DataConfig(source=str(table)), **TEXT)
    assert data.label_names == ["01", "1", "2"]  # three classes, not "01" and "1" merged into one
    assert "021340" in [text for split in data.splits.values() for text in split["text"]]
    assert any("labels '01' and '1' are one number written differently" in r.getMessage() for r in caplog.records)
    plain = tmp_path / "plain.csv"  # numbers written as numbers stay numbers (names in numeric order)
    plain.write_text("text,label\n" + "".join(f"film {i},{[0, 1, 2, 10][i % 4]}\n" for i in range(40)))
    assert load_labelled(DataConfig(source=str(plain)), **TEXT).label_names == ["0", "1", "2", "10"]


def test_a_table_named_with_brackets_is_read_itself_and_na_words_are_text(tmp_path):
    (tmp_path / "r[1].csv").write_text("text,label\n" + "".join(f"NA film {i},{['NA', 'pos'][i % 2]}\n"
                                                                for i in range(20)))
    (tmp_path / "r1.csv").write_text("text,label\n" + "".join(f"other {i},{i % 5}\n" for i in range(20)))
    data = load_labelled(DataConfig(source=str(tmp_path / "r[1].csv")), **TEXT)  # not r1.csv, which [1] matches
    assert data.label_names == ["NA", "pos"]  # NA, null, None are words: only an empty cell is missing
    tsv = tmp_path / "t.tsv"
    tsv.write_text("text\tlabel\n" + "".join(f"{['null', 'None'][i % 2]}\t{i % 2}\n" for i in range(20)))
    assert set(load_labelled(DataConfig(source=str(tsv)), **TEXT).splits["train"]["text"]) == {"null", "None"}


def test_labels_alike_but_for_case_and_spaces_are_a_warning(tmp_path, caplog):
    rows = [{"sentence": f"review {i}", "sentiment": ["pos", "POS ", "neg"][i % 3]} for i in range(30)]
    with caplog.at_level("WARNING", logger="mtl"):
        load_labelled(DataConfig(source=str(write(rows, tmp_path / "r.csv"))), **TEXT)
    assert any("labels 'POS ' and 'pos' differ only in letter case and spaces" in r.getMessage()
               for r in caplog.records), caplog.text


def test_a_split_column_of_one_table_is_its_splits(tmp_path, caplog):
    rows = [{**row, "Split": ["train", "train", "Test ", "dev"][i % 4]} for i, row in enumerate(make_sentences(40))]
    data = load_labelled(DataConfig(source=str(write(rows, tmp_path / "r.csv"))), **TEXT)
    assert {name: len(split) for name, split in data.splits.items()} == {"train": 20, "test": 10, "validation": 10}
    assert "Split" not in data.splits["train"].column_names
    assert sorted(data.splits["test"]["text"]) == sorted(row["sentence"] for row in rows[2::4])
    rows[5]["Split"] = "holdout"
    with caplog.at_level("WARNING", logger="mtl"):
        data = load_labelled(DataConfig(source=str(write(rows, tmp_path / "r.csv"))), **TEXT)
    assert sum(map(len, data.splits.values())) == 40
    assert any("column 'Split' holds values other than train, validation and test (holdout)" in r.getMessage()
               for r in caplog.records)


def test_split_files_whose_label_kinds_differ_are_named(tmp_path):
    write([{"sentence": f"film {i}", "label": i % 2} for i in range(10)], tmp_path / "train.csv")
    write([{"sentence": f"film {i}", "label": ["neg", "pos"][i % 2]} for i in range(4)], tmp_path / "test.csv")
    with pytest.raises(DataError, match=r"column 'label' holds numbers in train.csv, text in test.csv; write it alike"):
        load_labelled(DataConfig(source=str(tmp_path)), **TEXT)


def test_a_missing_image_in_a_table_of_paths_is_named_by_table_and_row(tmp_path):
    from PIL import Image

    from mtl.data.images import verify_images

    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    (tmp_path / "photos.csv").write_text("path,label\na.png,cat\na.png,dog\ngone.png,cat\n")
    with pytest.raises(DataError, match=r"train \(.*photos.csv\) row 3 \(.*gone.png\) does not exist; check the path"):
        load_labelled(DataConfig(source=str(tmp_path / "photos.csv")), input_name="image",
                      input_candidates=("image", "path"), check=verify_images)


def test_label_unseen_in_train_names_split_and_row(tmp_path):
    train = write(make_sentences(20), tmp_path / "train.csv")
    test_rows = make_sentences(5)
    test_rows[3]["sentiment"] = "mixed"
    test = write(test_rows, tmp_path / "test.csv")
    with pytest.raises(DataError, match="test row 4: label 'mixed' is not among the training labels"):
        load_labelled(DataConfig(files={"train": str(train), "test": str(test)}), **TEXT)


def test_a_split_label_written_unlike_a_training_label_is_named_with_the_label_it_matches(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f"review {i},{i % 2}\n" for i in range(20)))
    validation = tmp_path / "validation.csv"
    validation.write_text("text,label\n" + "".join(f"film {i},0{i % 2}\n" for i in range(6)))
    with pytest.raises(DataError, match=r"validation row 1: label '00' is not among the training labels \(0, 1\); "
                                        r"it is the same number as label '0'"):
        load_labelled(DataConfig(files={"train": str(train), "validation": str(validation)}), **TEXT)
    validation.write_text("text,label\n" + "".join(f"film {i},{'ONE' if i % 2 else 'zero'}\n" for i in range(6)))
    train.write_text("text,label\n" + "".join(f"review {i},{'one' if i % 2 else 'zero'}\n" for i in range(20)))
    with pytest.raises(DataError, match="label 'ONE' is not among .*; it is written in another letter case than "
                                        "label 'one'"):
        load_labelled(DataConfig(files={"train": str(train), "validation": str(validation)}), **TEXT)


def test_limit_per_class_keeps_a_seeded_sample_of_each_class():
    ds = Dataset.from_dict({"text": [str(i) for i in range(30)], "label": [i % 3 for i in range(30)]})
    ds = ds.cast_column("label", ClassLabel(names=["a", "b", "c"]))
    few = limit_per_class(ds, 4, seed=1)
    assert sorted(few["label"]) == [0] * 4 + [1] * 4 + [2] * 4
    assert few["text"] == limit_per_class(ds, 4, seed=1)["text"] != limit_per_class(ds, 4, seed=2)["text"]


def test_python_objects_become_labelled_splits():
    frame = pd.DataFrame(make_sentences(12))
    split, names = labelled_split(frame, label_names=None, what="train", **TEXT)
    assert names == ["negative", "positive"] and split.column_names == ["text", "label"]
    rows, _ = labelled_split(make_sentences(4), label_names=names, what="eval", **TEXT)
    assert rows.features["label"].names == names
    columns, _ = labelled_split({"text": ["x", "y"], "label": ["positive", "negative"]}, label_names=names, what="x", **TEXT)
    assert columns["label"] == [1, 0]


def test_classlabel_names_are_kept_and_reordered_to_requested_names():
    ds = Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}).cast_column("label", ClassLabel(names=["neg", "pos"]))
    splits, names = encode_labels(DatasetDict({"train": ds}))
    assert names == ["neg", "pos"]
    splits, names = encode_labels(DatasetDict({"train": ds}), ["pos", "neg"])
    assert names == ["pos", "neg"] and splits["train"]["label"] == [1, 0]


def test_whole_number_labels_keep_their_names_whether_ints_floats_or_text():
    floats = Dataset.from_dict({"text": ["a", "b", "c"], "label": [1.0, 0.0, 1.0]})  # a CSV column with a gap
    splits, names = encode_labels(DatasetDict({"train": floats}))
    assert names == ["0", "1"] and splits["train"]["label"] == [1, 0, 1]
    # a model trained on labels 1 and 5 (names "1", "5") evaluated on ints or floats: each by its name, not as an
    # index into the names (label 1 is "1", not names[1])
    for values in ([5, 1, 5], [5.0, 1.0, 5.0], ["5", "1", "5"]):
        data = Dataset.from_dict({"text": ["a", "b", "c"], "label": values})
        splits, names = encode_labels(DatasetDict({"evaluate": data}), ["1", "5"], train_key="evaluate")
        assert splits["evaluate"]["label"] == [1, 0, 1], values
    indices = Dataset.from_dict({"text": ["a", "b"], "label": [1, 0]})  # data.label_names for labels 0..n-1
    splits, names = encode_labels(DatasetDict({"train": indices}), ["neg", "pos"])
    assert splits["train"]["label"] == [1, 0]


def test_missing_file_and_unknown_source_are_clear(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="data.files.train: file .* does not exist"):
        load_labelled(DataConfig(files={"train": str(tmp_path / "nope.csv")}), **TEXT)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"data.source: \.\./reviews.csv does not exist .*; a relative path is read "
                                        r"from the working directory \(.*\), not from the recipe's folder"):
        load_labelled(DataConfig(source="../reviews.csv"), **TEXT)
    import datasets.config
    import huggingface_hub.constants

    # the network edge: no Hub, as on an offline machine (the environment variables are read at import)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="not a built-in dataset .*vader-movie-snippets"):
        load_labelled(DataConfig(source="someone/no-such-dataset"), **TEXT)


def text_check():
    from mtl.tasks import TextSentiment

    return TextSentiment().check_inputs


def test_empty_blank_or_missing_texts_name_split_rows_and_file(tmp_path):
    rows = make_sentences(20)
    rows[2]["sentence"], rows[4]["sentence"], rows[7]["sentence"] = "", "   ", None
    path = write(rows, tmp_path / "r.csv")
    with pytest.raises(DataError, match=r"^train \(.*r\.csv\) rows 3, 5, 8: the text is empty or missing "
                                        r"\(3 of 20 rows\); fill them in or remove those rows"):
        load_labelled(DataConfig(source=str(path)), check=text_check(), **TEXT)
    for row in (9, 11, 13, 15):
        rows[row]["sentence"] = ""
    with pytest.raises(DataError, match=r"rows 3, 5, 8, 10, 12 and 2 more: .* \(7 of 20 rows\)"):
        load_labelled(DataConfig(source=str(write(rows, tmp_path / "more.csv"))), check=text_check(), **TEXT)
    test_rows = make_sentences(6)
    test_rows[1]["sentence"] = " "
    files = {"train": str(write(make_sentences(20), tmp_path / "train.csv")),
             "test": str(write(test_rows, tmp_path / "test.csv"))}
    with pytest.raises(DataError, match=r"^test \(.*test\.csv\) row 2: the text is empty or missing; fill it in"):
        load_labelled(DataConfig(files=files), check=text_check(), **TEXT)
    with pytest.raises(DataError, match=r"^train row 2: the text is empty or missing"):
        labelled_split(test_rows, label_names=None, what="train", check=text_check(), **TEXT)


def shared_input_warnings(caplog, config, **options):
    with caplog.at_level("WARNING", logger="mtl.data"):
        data = load_labelled(config, **(options or TEXT))
    return data, [r.getMessage() for r in caplog.records if "as a training row" in r.getMessage()]


def test_rows_duplicated_across_splits_are_one_warning_with_counts(tmp_path, caplog):
    rows = make_sentences(200, seed=3)
    assert len({r["sentence"] for r in rows}) == 200
    path = write(rows + rows[:50], tmp_path / "r.csv")
    data, warnings = shared_input_warnings(caplog, DataConfig(source=str(path), validation_size=0.1, test_size=0.1))
    train = set(data.splits["train"]["text"])
    shared = {name: sum(text in train for text in data.splits[name]["text"]) for name in ("test", "validation")}
    assert shared["test"] and shared["validation"]
    assert len(warnings) == 1, warnings
    assert (f"{shared['test']} of 25 test rows and {shared['validation']} of 23 validation rows have the same text "
            "as a training row") in warnings[0]
    assert "df.drop_duplicates(subset=['sentence'])" in warnings[0]
    assert "test[~test['sentence'].isin(train['sentence'])]" in warnings[0]  # for data given as split files
    assert "training rows also repeat another training row" in warnings[0]


def test_the_python_api_warns_once_when_validation_rows_repeat_training_rows(tmp_path, caplog, tiny_bert):
    from mtl.tasks import TextSentiment

    rows = make_sentences(40, seed=3)
    task = TextSentiment(tiny_bert, max_length=16)
    options = dict(epochs=1, batch_size=16, max_steps=1)
    with caplog.at_level("WARNING", logger="mtl"):
        task.fit(rows, rows[:8] + make_sentences(4, seed=9), **options)
    shared = [r.getMessage() for r in caplog.records if "as a training row" in r.getMessage()]
    assert len(shared) == 1 and "8 of 12 validation rows have the same text as a training row" in shared[0]
    caplog.clear()
    data, warnings = shared_input_warnings(caplog, DataConfig(source=str(write(rows + rows[:10], tmp_path / "r.csv"))))
    assert len(warnings) == 1
    with caplog.at_level("WARNING", logger="mtl"):  # splits load_labelled checked: warned there, not again by fit
        task.fit(data.splits["train"], data.splits["validation"], **options)
    assert sum("as a training row" in r.getMessage() for r in caplog.records) == 1


def test_distinct_texts_images_and_speech_files_give_no_duplicate_warning(tmp_path, caplog):
    import numpy as np
    import soundfile
    from PIL import Image

    path = write(make_sentences(200, seed=3), tmp_path / "r.csv")
    assert shared_input_warnings(caplog, DataConfig(source=str(path)))[1] == []
    for split in ("train", "test"):  # the same pixels in both split folders, as distinct files
        for i in range(12):
            folder = tmp_path / "images" / split / ("red" if i % 2 else "blue")
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (255, 0, 0) if i % 2 else (0, 0, 255)).save(folder / f"{i}.png")
    images = dict(input_name="image", input_candidates=("image",))
    data, warnings = shared_input_warnings(caplog, DataConfig(source=str(tmp_path / "images")), **images)
    assert len(data.splits["test"]) == 12 and warnings == []
    for speaker in range(8):  # Speech Commands' <speaker>_nohash_<n>.wav, silent clips (identical bytes)
        for word in ("yes", "no"):
            folder = tmp_path / "speech" / word
            folder.mkdir(parents=True, exist_ok=True)
            soundfile.write(folder / f"{speaker:08x}_nohash_0.wav", np.zeros(160, np.float32), 16000)
    audio = dict(input_name="audio", input_candidates=("audio",))
    data, warnings = shared_input_warnings(caplog, DataConfig(source=str(tmp_path / "speech")), **audio)
    assert len(data.splits["test"]) and warnings == []


def test_images_nested_below_their_label_folders_are_one_error_showing_the_layout(tmp_path):
    from PIL import Image

    from mtl.data.tables import read_source

    for label in ("cat", "dog"):
        (tmp_path / label / "sub" / "deeper").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(tmp_path / label / "sub" / "deeper" / f"{i}.png")
    with pytest.raises(DataError, match=r"images lie 3 folders deep, e\.g\. cat/sub/deeper/0\.png\); lay them out as "
                                        r"<label>/<image>"):
        read_source(str(tmp_path))
    for label in ("cat", "dog"):  # <label>/<batch>/<image>: imagefolder would label them batch0 / batch1
        for batch in ("batch0", "batch1"):
            (tmp_path / "two" / label / batch).mkdir(parents=True)
            Image.new("RGB", (16, 16)).save(tmp_path / "two" / label / batch / "0.png")
    with pytest.raises(DataError, match=r"images labelled 'batch0' \(the folder right above them\) lie in cat/batch0, "
                                        r"dog/batch0: the folders above are not all split names"):
        read_source(str(tmp_path / "two"))
    for split in ("train", "testing"):  # split folders, as datasets spells them, stay a valid layout
        for label in ("cat", "dog"):
            (tmp_path / "splits" / split / label).mkdir(parents=True)
            Image.new("RGB", (16, 16)).save(tmp_path / "splits" / split / label / "0.png")
    assert sorted(read_source(str(tmp_path / "splits"))) == ["test", "train"]
    (tmp_path / "splits" / "testing").rename(tmp_path / "splits" / "Testing")  # datasets would merge it into train
    with pytest.raises(DataError, match=r"2 images lie outside its split folders \(train\), e.g. Testing/cat/0.png; "
                                        r"move every image into <split>/<label>/ \(split folders are named train, "
                                        r"validation or test, in lower case\)"):
        read_source(str(tmp_path / "splits"))
    for place in ("cifar_train/animals", "cifar_test/animals", "__MACOSX/cifar_train/animals", "cifar_train/.cache"):
        for label in ("cat", "dog"):  # split names after a prefix, deeper labels, hidden and __ folders: all fine
            (tmp_path / "more" / place / label).mkdir(parents=True)
            Image.new("RGB", (16, 16)).save(tmp_path / "more" / place / label / "0.png")
    assert {name: split.features["label"].names for name, split in read_source(str(tmp_path / "more")).items()} == \
        {"train": ["cat", "dog"], "test": ["cat", "dog"]}


def test_a_label_unknown_to_data_label_names_or_in_a_python_validation_split_is_named_as_such(tmp_path, tiny_bert):
    from mtl.tasks import TextSentiment

    rows = make_sentences(20)
    with pytest.raises(DataError, match=r"row \d+: label 'negative' is not among data.label_names \(positive\); fix "
                                        r"the row or add it to data.label_names"):
        load_labelled(DataConfig(source=str(write(rows, tmp_path / "r.csv")), label_names=["positive"]), **TEXT)
    validation = make_sentences(4)
    validation[1]["sentiment"] = "unseen"
    with pytest.raises(DataError, match=r"validation data row 2: label 'unseen' is not among the training labels"):
        TextSentiment(tiny_bert, max_length=16).fit(rows, validation, max_steps=1, batch_size=8)


def test_a_label_folder_given_to_the_python_api_is_read_as_recipes_read_it(tmp_path):
    """``task.fit("my_images/")`` with ``<label>/*.png`` inside; a folder that holds split folders names them."""
    import numpy as np
    from PIL import Image

    from mtl.data import to_dataset

    for split in ("train", "test"):
        for label in ("cat", "dog"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / split / label / f"{i}.png")
    data = to_dataset(tmp_path / "train", "train data")
    assert len(data) == 6 and {"image", "label"} <= set(data.column_names)
    with pytest.raises(DataError, match=r"train data: folder .* holds the splits \['test', 'train'\]; pass one"):
        to_dataset(tmp_path, "train data")


def test_a_label_with_one_example_stays_in_training_and_dry_run_sees_what_training_sees(tmp_path, caplog):
    rows = make_sentences(200, seed=3)
    rows[7]["sentiment"] = "neutral"  # one example of a third label
    path = write(rows, tmp_path / "r.csv")
    with caplog.at_level("WARNING", logger="mtl.data"):
        data = load_labelled(DataConfig(source=str(path)), **TEXT)
    assert data.label_names == ["negative", "neutral", "positive"]
    neutral = data.label_names.index("neutral")
    assert list(data.splits["train"]["label"]).count(neutral) == 1
    assert any("1 label with a single example (neutral) stays in train" in r.getMessage() for r in caplog.records)
    for split in ("validation", "test"):  # the other labels are still split stratified
        assert {data.label_names[v] for v in data.splits[split]["label"]} == {"negative", "positive"}


def test_labels_differing_only_in_spaces_are_one_error(tmp_path):
    rows = make_sentences(60, seed=3)
    for row in rows[:5]:
        row["sentiment"] = row["sentiment"] + " "
    with pytest.raises(DataError, match=r"differ only in spaces before or after them: .*'positive' vs 'positive '"):
        load_labelled(DataConfig(source=str(write(rows, tmp_path / "r.csv"))), **TEXT)


def test_unseen_test_labels_are_counted(tmp_path):
    rows = make_sentences(60, seed=3)
    test = make_sentences(20, seed=4)
    for row in test[2:5]:
        row["sentiment"] = "neutral"
    files = {"train": str(write(rows, tmp_path / "train.csv")), "test": str(write(test, tmp_path / "test.csv"))}
    with pytest.raises(DataError, match=r"test row 3: label 'neutral' .*\(3 such rows, labels 'neutral'; rows "
                                        r"counted from 1"):
        load_labelled(DataConfig(files=files), **TEXT)


def test_too_few_examples_to_hold_out_splits_is_a_data_error(tmp_path):
    rows = [{"sentence": f"film number {i}", "sentiment": label} for i, label in enumerate(["a", "b", "c", "d"])]
    with pytest.raises(DataError, match=r"too few to hold out .* give your own splits with data.files"):
        load_labelled(DataConfig(source=str(write(rows, tmp_path / "r.csv"))), **TEXT)


def test_relative_file_paths_in_a_training_table_are_read_from_the_tables_folder(tmp_path, monkeypatch):
    from PIL import Image

    from mtl.tasks import ImageClassification

    folder = tmp_path / "data"
    for label in ("cat", "dog"):
        (folder / "pictures" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (16, 16), (80 * i, 0, 0)).save(folder / "pictures" / label / f"{i}.png")
    rows = [f"pictures/{label}/{i}.png,{label}" for label in ("cat", "dog") for i in range(3)]
    (folder / "train.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the run starts in another folder than the table's
    check = ImageClassification("unused").check_inputs  # opens every image: fails on an unresolved path
    data = load_labelled(DataConfig(source=str(folder / "train.csv"), validation_size=0.2, test_size=0.2),
                         input_name="image", input_candidates=("image", "path"), check=check)
    paths = [p for split in data.splits.values() for p in split["image"]]
    assert len(paths) == 6 and all(Path(p).is_file() and Path(p).parent.parent.parent == folder for p in paths), paths
    texts = [f"site{i}.com" if i % 2 else f"http://x.io/page{i}.php" for i in range(12)]  # texts that look like files
    write([{"text": t, "label": i % 2} for i, t in enumerate(texts)], folder / "links.csv")
    (folder / "site1.com").write_text("a file of that name beside the table")
    text = load_labelled(DataConfig(source=str(folder / "links.csv")), **TEXT)
    assert sorted(t for split in text.splits.values() for t in split["text"]) == sorted(texts)


def test_tables_pandas_reads_well_are_read_whatever_their_field_lengths_or_unused_columns(tmp_path):
    long_texts = tmp_path / "long.csv"  # 200 KB a text: more than Python's csv module takes by default
    rows = [{"text": ("good " if i % 2 else "bad ") * 40_000, "label": i % 2} for i in range(20)]
    pd.DataFrame(rows).to_csv(long_texts, index=False)
    assert len(load_labelled(DataConfig(source=str(long_texts)), **TEXT).splits["train"]) == 16
    metadata = tmp_path / "meta.jsonl"  # a column mtl does not use may hold objects with other keys row to row
    metadata.write_text("".join(json.dumps({"text": f"film {i}", "label": i % 2, "meta": {"a": 1} if i % 2 else
                                            {"b": "x"}}) + "\n" for i in range(20)))
    assert load_labelled(DataConfig(source=str(metadata)), **TEXT).label_names == ["0", "1"]
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("text,label\n" + "".join(f"film {i},{i % 2},\n" for i in range(20)))
    with pytest.raises(DataError, match=r"20 rows hold more fields than the header's 2 .* each ends with an extra "
                                        r"comma: remove the trailing commas"):
        load_labelled(DataConfig(source=str(trailing)), **TEXT)
