"""Image classification on tiny models built from configs: learning, image folders, the pipeline round trip."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from mtl.data import load_labelled
from mtl.errors import DataError
from mtl.modeling.fusion import PROBE_EXAMPLES
from mtl.config import DataConfig
from mtl.tasks import ImageClassification
from mtl.tasks.image_classification import to_rgb

from conftest import pipeline_top1


def colour_images(count: int, seed: int) -> dict[str, list]:
    """Noisy 28x28 images; 'red' ones have a saturated red channel, 'dark' ones do not (the task's own examples)."""
    return ImageClassification.synthetic_examples(count, seed)


TIMM_PREPROCESSING = {"input_size": (3, 32, 32), "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center",
                      "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def build_model(kind: str, folder):
    """A tiny random image classifier folder: ``vit``, ``resnet`` or ``timm`` (timm's test_efficientnet, wrapped)."""
    from transformers import (ResNetConfig, ResNetForImageClassification, TimmWrapperConfig,
                              TimmWrapperForImageClassification, TimmWrapperImageProcessor, ViTConfig,
                              ViTForImageClassification, ViTImageProcessor)
    import torch

    torch.manual_seed(0)
    if kind == "timm":
        config = TimmWrapperConfig(architecture="test_efficientnet", num_labels=3, pretrained_cfg=TIMM_PREPROCESSING)
        TimmWrapperForImageClassification(config).save_pretrained(folder)
        TimmWrapperImageProcessor(pretrained_cfg=TIMM_PREPROCESSING, architecture="test_efficientnet").save_pretrained(folder)
        return folder
    if kind == "vit":
        model = ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                                    num_attention_heads=2, intermediate_size=64))
    else:
        model = ResNetForImageClassification(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]))
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["vit", "resnet", "timm"])
def test_fit_learns_and_pipeline_agrees_with_predict(kind, tmp_path):
    task = ImageClassification(build_model(kind, tmp_path / kind))
    result = task.fit(colour_images(160, 0), colour_images(40, 1), epochs=6, batch_size=16, learning_rate=2e-3,
                      warmup_ratio=0.0)
    assert result.best_metric >= 0.9
    assert task.evaluate(colour_images(40, 2))["accuracy"] >= 0.9
    task.save(tmp_path / "saved")
    probes = colour_images(6, 3)["image"]
    paths = []
    for i, image in enumerate(probes):
        paths.append(str(tmp_path / f"probe{i}.png"))
        image.save(paths[-1])
    ours = task.predict(paths)
    theirs = pipeline_top1("image-classification", tmp_path / "saved", paths)
    assert [o["label"] for o in ours] == [t["label"] for t in theirs]
    assert [o["score"] for o in ours] == pytest.approx([t["score"] for t in theirs], abs=1e-4)


def write_folder(root, splits):
    data = colour_images(24, 4)
    for split in splits:
        for i, (image, label) in enumerate(zip(data["image"], data["label"])):
            folder = root / split / label if split else root / label
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i}.png")


def test_image_folder_with_and_without_split_folders(tmp_path):
    options = dict(input_name="image", input_candidates=ImageClassification.spec.input_candidates)
    write_folder(tmp_path / "split", ["train", "test"])
    data = load_labelled(DataConfig(source=str(tmp_path / "split"), validation_size=0.25), **options)
    assert data.label_names == ["dark", "red"]
    assert len(data.splits["test"]) == 24 and len(data.splits["train"]) + len(data.splits["validation"]) == 24
    write_folder(tmp_path / "flat", [""])
    flat = load_labelled(DataConfig(source=str(tmp_path / "flat"), validation_size=0.25, test_size=0.25), **options)
    assert sum(len(s) for s in flat.splits.values()) == 24 and flat.label_names == ["dark", "red"]


def test_other_files_in_an_image_folder_change_no_split_and_output_folders_are_not_data(tmp_path, monkeypatch, caplog):
    options = dict(input_name="image", input_candidates=ImageClassification.spec.input_candidates)
    monkeypatch.chdir(tmp_path)
    for layout, splits in (("flat", [""]), ("split", ["train", "test"])):
        write_folder(tmp_path / layout, splits)
        label_folder = tmp_path / layout / (splits[0] or "") / "red"
        (label_folder / "test_notes.csv").write_text("who,when\nme,today\n")  # names of datasets' split patterns
        (label_folder / "train_log.jsonl").write_text('{"step": 1}\n')
        source = layout if layout == "split" else str(tmp_path / layout)  # a relative path keeps its splits too
        data = load_labelled(DataConfig(source=source, validation_size=0.25, test_size=0.25), **options)
        assert sum(len(split) for split in data.splits.values()) == 24 * len(splits)  # every image, nothing else
        assert data.label_names == ["dark", "red"]
        if layout == "split":
            assert len(data.splits["test"]) == 24
    (tmp_path / "split" / "extra" / "red").mkdir(parents=True)  # datasets would drop it without a word
    Image.new("RGB", (16, 16)).save(tmp_path / "split" / "extra" / "red" / "stray.png")
    with pytest.raises(DataError, match=r"1 images lie outside its split folders \(test, train\), e.g. "
                                        r"extra/red/stray.png; move every image into <split>/<label>/ \(split"):
        load_labelled(DataConfig(source="split"), **options)
    (tmp_path / "flat" / "red" / "drawing.svg").write_text("<svg/>")
    (tmp_path / "flat" / "red" / "LICENSE").write_text("CC BY 4.0")  # no suffix, notes: not warned about
    (tmp_path / "flat" / "tulip").mkdir()
    (tmp_path / "flat" / "tulip" / "notes.txt").write_text("to do: photograph tulips")
    (tmp_path / "flat" / "red" / "moved.png").symlink_to(tmp_path / "elsewhere.png")  # its target moved away
    with caplog.at_level("WARNING", logger="mtl"):
        assert load_labelled(DataConfig(source=str(tmp_path / "flat")), **options).label_names == ["dark", "red"]
    assert any("folder tulip holds no images (.jpg" in r.getMessage() and "its label will not be in the data"
               in r.getMessage() for r in caplog.records)
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert left_out == [f"data.source: 1 link in {tmp_path / 'flat'} leads nowhere and is left out (red/moved.png -> "
                        f"{tmp_path / 'elsewhere.png'}); fix or remove it",
                        "data.source: 1 files are not images mtl reads and are left out (1 .svg); mtl reads .jpg, "
                        ".jpeg, .png, .bmp, .gif, .webp, .tif, .tiff: convert them if they are data"]
    write_folder(tmp_path / "one", ["train"])
    for image in (tmp_path / "one" / "train" / "dark").iterdir():
        image.rename(tmp_path / "one" / "train" / "red" / f"d{image.name}")
    (tmp_path / "one" / "train" / "dark").rmdir()
    with pytest.raises(DataError, match=r"every image lies in one label folder \(red\); a classifier needs at least "
                                        r"two labels"):
        load_labelled(DataConfig(source=str(tmp_path / "one")), **options)
    run = tmp_path / "flat" / "outputs" / "run1"
    run.mkdir(parents=True)
    (run / ".mtl-output").write_text("{}\n")
    Image.new("RGB", (16, 16)).save(run / "confusion_matrix.png")
    for source, message in ((tmp_path / "flat", r"holds mtl output folders \(outputs/run1: trained models, not data\)"),
                            (run, r"run1 is an mtl output folder \(a trained model, not data\)")):
        with pytest.raises(DataError, match=message):
            load_labelled(DataConfig(source=str(source)), **options)


def test_label_folders_that_are_links_are_read(tmp_path):
    write_folder(tmp_path / "real", [""])
    (tmp_path / "linked").mkdir()
    for label in ("dark", "red"):
        (tmp_path / "linked" / label).symlink_to(tmp_path / "real" / label, target_is_directory=True)
    options = dict(input_name="image", input_candidates=ImageClassification.spec.input_candidates)
    data = load_labelled(DataConfig(source=str(tmp_path / "linked"), validation_size=0.25, test_size=0.25), **options)
    assert sum(map(len, data.splits.values())) == 24 and data.label_names == ["dark", "red"]


def test_evaluation_is_deterministic_and_training_is_augmented(tmp_path):
    task = ImageClassification(build_model("vit", tmp_path / "m"), rotation=20, horizontal_flip=True)
    task.prepare()
    batch = {"image": colour_images(4, 5)["image"], "label": [0, 1, 0, 1]}
    plain = task.transform(batch, train=False)["pixel_values"]
    assert plain.shape == (4, 3, 32, 32)
    assert (plain == task.transform(batch, train=False)["pixel_values"]).all()
    assert not (task.transform(batch, train=True)["pixel_values"] == plain).all()


def test_inputs_become_rgb_and_bad_inputs_are_named(tmp_path):
    assert to_rgb(np.zeros((9, 12), dtype=np.uint8)).size == (12, 9)
    assert to_rgb(np.ones((9, 12, 1), dtype=np.float32)).getpixel((0, 0)) == (255, 255, 255)
    # rows of a (N, H, W, C) array given as a table column arrive as nested lists
    assert to_rgb(np.full((9, 12, 3), 200, dtype=np.uint8).tolist()).getpixel((0, 0)) == (200, 200, 200)
    with pytest.raises(DataError, match="rows have different lengths"):
        to_rgb([[0] * 12, [0] * 11])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"input 2 \(.*broken\.png\): cannot be decoded \(corrupt or not an image\)"):
        ImageClassification("unused").inputs_to_dataset([np.zeros((8, 8, 3), dtype=np.uint8), str(broken)])
    with pytest.raises(DataError, match="expected a PIL image"):
        to_rgb(42)


def test_16_bit_and_float_images_decode_like_the_8_bit_one(tmp_path):
    """The same grey ramp as an 8-bit PNG, a 16-bit PNG, a 32-bit integer TIFF and float TIFFs: training decode and
    predict give the same pixels for all (PIL's own convert("RGB") turns the 16-bit one white, the float one black)."""
    grey = (np.arange(32 * 40).reshape(32, 40) * 7 % 256).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "g8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    Image.fromarray(grey.astype(np.int32) * 257).save(tmp_path / "i32.tif")
    Image.fromarray((grey / 255).astype(np.float32)).save(tmp_path / "float.tif")
    Image.fromarray(grey.astype(np.float32)).save(tmp_path / "float255.tif")
    files = [str(tmp_path / name) for name in ("g8.png", "g16.png", "i32.tif", "float.tif", "float255.tif")]
    assert [Image.open(f).mode for f in files] == ["L", "I;16", "I", "F", "F"]
    task = ImageClassification("unused")
    decoded = task.decode({"image": [{"path": f, "bytes": None} for f in files]})
    predicted = task.inputs_to_dataset(files)
    for pixels in (*decoded["pixels"], *predicted["pixels"]):
        rgb = np.frombuffer(pixels, np.uint8).reshape(32, 40, 3)
        assert np.abs(rgb.astype(int) - grey[..., None]).max() <= 1


def test_images_outside_8_and_16_bit_ranges_are_named(tmp_path):
    Image.fromarray(np.full((9, 9), 70000, np.int32)).save(tmp_path / "i32.tif")
    Image.fromarray(np.full((9, 9), -0.5, np.float32)).save(tmp_path / "negative.tif")
    nan = np.zeros((9, 9), np.float32)
    nan[0, 0] = np.nan
    Image.fromarray(nan).save(tmp_path / "nan.tif")
    task = ImageClassification("unused")
    with pytest.raises(DataError, match=r"input 1 \(.*i32\.tif\): the image holds 32-bit integer pixels"):
        task.inputs_to_dataset([str(tmp_path / "i32.tif")])
    with pytest.raises(DataError, match=r"image \(.*negative\.tif\): .* float pixels must lie in 0\.\.1"):
        task.decode({"image": [{"path": str(tmp_path / "negative.tif"), "bytes": None}]})
    with pytest.raises(DataError, match=r"input 2 \(.*nan\.tif\): the float image holds NaN"):
        task.inputs_to_dataset([np.zeros((9, 9), np.uint8), str(tmp_path / "nan.tif")])


@pytest.mark.pretrained
def test_real_efficientnet_head_names_reach_the_pipeline(tmp_path):
    """timm-wrapper configs keep labels in ``label_names``; the saved folder must name the user's labels."""
    task = ImageClassification()  # EfficientNet-Lite0 through its PyPI mirror
    task.fit(colour_images(32, 0), colour_images(16, 1), freeze="backbone", epochs=1, batch_size=16,
             learning_rate=1e-2)
    assert task.freeze_report.trainable == 1280 * 2 + 2
    task.save(tmp_path / "saved")
    images = colour_images(4, 3)["image"]
    ours = task.predict(images)
    from transformers import pipeline

    clf = pipeline("image-classification", model=str(tmp_path / "saved"))
    theirs = [clf(image, top_k=1)[0] for image in images]
    assert [t["label"] for t in theirs] == [o["label"] for o in ours]
    assert {t["label"] for t in theirs} <= {"dark", "red"}
    assert [o["score"] for o in ours] == pytest.approx([t["score"] for t in theirs], abs=1e-4)


def save_probes(folder, count: int = 6) -> list[str]:
    paths = []
    for i, image in enumerate(colour_images(count, 3)["image"]):
        paths.append(str(folder / f"probe{i}.png"))
        image.save(paths[-1])
    return paths


def test_mlp_head_trains_saves_and_loads_back_in_mtl_and_plain_transformers(tmp_path):
    task = ImageClassification(build_model("timm", tmp_path / "timm"), image_size=48)
    task.fit(colour_images(160, 0), colour_images(40, 1), head={"type": "mlp", "hidden": [24], "dropout": 0.1},
             epochs=6, batch_size=16, learning_rate=2e-3, warmup_ratio=0.0)
    head = task.model.timm_model.classifier
    assert [type(m).__name__ for m in head.layers] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert head.layers[0].out_features == 24 and head.layers[-1].out_features == 2
    assert task.evaluate(colour_images(40, 2))["accuracy"] >= 0.9
    task.save(tmp_path / "saved")
    paths = save_probes(tmp_path)
    ours = task.predict(paths)
    again = ImageClassification.load(tmp_path / "saved").predict(paths)
    assert [o["score"] for o in again] == pytest.approx([o["score"] for o in ours], abs=1e-6)
    theirs = pipeline_top1("image-classification", tmp_path / "saved", paths, trust_remote_code=True)
    assert [o["label"] for o in ours] == [t["label"] for t in theirs]
    assert [o["score"] for o in ours] == pytest.approx([t["score"] for t in theirs], abs=1e-4)


def test_image_size_reaches_the_saved_processor(tmp_path):
    task = ImageClassification(build_model("timm", tmp_path / "timm"), image_size=40)
    task.prepare()
    assert task.processor.data_config["mean"] == (0.5, 0.5, 0.5)  # the checkpoint's own normalisation is kept
    batch = task.transform({"image": colour_images(2, 0)["image"]}, train=False)
    assert batch["pixel_values"].shape == (2, 3, 40, 40)
    from transformers import AutoImageProcessor

    task.fit(colour_images(16, 0), colour_images(8, 1), epochs=1, batch_size=8)
    task.save(tmp_path / "saved")
    reloaded = AutoImageProcessor.from_pretrained(tmp_path / "saved")
    assert reloaded(colour_images(1, 0)["image"], return_tensors="pt")["pixel_values"].shape == (1, 3, 40, 40)


def test_image_size_a_vit_cannot_take_is_refused_before_training_and_a_convnet_takes_any(tmp_path):
    from mtl.errors import RecipeError

    vit = ImageClassification(build_model("vit", tmp_path / "vit"), image_size=48)
    with pytest.raises(RecipeError, match=r"image_size: checkpoint .*vit cannot take 48-pixel images .*it takes "
                                          r"32-pixel images; leave image_size out"):
        vit.fit(colour_images(16, 0), colour_images(8, 1), epochs=1, batch_size=8)
    resnet = ImageClassification(build_model("resnet", tmp_path / "resnet"), image_size=48)
    resnet.fit(colour_images(16, 0), colour_images(8, 1), epochs=1, batch_size=8)
    assert resnet.transform({"image": colour_images(1, 0)["image"]}, train=False)["pixel_values"].shape[-1] == 48


def count_backbone_examples(model) -> list[int]:
    seen = [0]
    backbone = getattr(model, model.base_model_prefix)
    backbone.register_forward_hook(lambda module, args, output: seen.__setitem__(0, seen[0] + len(args[0])))
    return seen


@pytest.mark.parametrize("cache", [True, False])
def test_frozen_backbone_runs_once_per_example_with_the_feature_cache(cache, tmp_path):
    task = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=False)
    train, validation = colour_images(96, 0), colour_images(32, 1)
    options = dict(freeze="backbone", batch_size=16, learning_rate=5e-2, warmup_ratio=0.0, feature_cache=cache)
    task.fit(train, validation, epochs=1, **options)  # builds the model with the right labels; the next fit reuses it
    backbone_before = {k: v.clone() for k, v in task.model.resnet.state_dict().items()}
    head_before = task.model.classifier[1].weight.detach().clone()
    seen = count_backbone_examples(task.model)
    result = task.fit(train, validation, epochs=4, **options)
    # with the cache: once per example, and the inference copy's check (PROBE_EXAMPLES on the model and on the copy)
    assert seen[0] == (96 + 32 + 2 * PROBE_EXAMPLES if cache else 4 * (96 + 32))
    assert all((task.model.resnet.state_dict()[k] == v).all() for k, v in backbone_before.items())
    assert not (task.model.classifier[1].weight == head_before).all()
    assert result.best_metric >= 0.9
    assert task.evaluate(colour_images(40, 2))["accuracy"] >= 0.9


def test_image_files_named_for_their_split_and_folders_with_glob_characters_are_read_whole(tmp_path):
    from mtl.data.tables import read_source

    data = colour_images(24, 4)
    for i, (image, label) in enumerate(zip(data["image"], data["label"])):
        folder = tmp_path / "flat" / f"{label} [v2]*"  # a label folder whose name reads as a glob pattern
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{['train', 'test'][i % 2]}_{i}.png")  # the split in each file's name
        image.convert("L").save(folder / f"{['train', 'test'][i % 2]}_{i}.JPG")
    splits = read_source(str(tmp_path / "flat"))
    assert {name: len(split) for name, split in splits.items()} == {"train": 24, "test": 24}
    assert sorted(splits["train"].features["label"].names) == ["dark [v2]*", "red [v2]*"]
    for i, (image, label) in enumerate(zip(data["image"], data["label"])):  # folders of one split: a pattern each
        folder = tmp_path / "split" / ["train", "test"][i % 2] / f"{label} [v2]*"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i}.png")
    assert {name: len(split) for name, split in read_source(str(tmp_path / "split")).items()} == {"train": 12,
                                                                                                   "test": 12}


def test_bad_images_are_named_each_with_its_reason_then_counted(tmp_path):
    write_folder(tmp_path / "photos", ["train"])
    red = tmp_path / "photos" / "train" / "red"
    Image.new("RGB", (5, 5)).save(red / "a-tiny.png")
    for i in range(6):
        (red / f"broken{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    options = dict(input_name="image", input_candidates=ImageClassification.spec.input_candidates)
    with pytest.raises(DataError) as caught:
        load_labelled(DataConfig(source=str(tmp_path / "photos")), check=ImageClassification().check_inputs, **options)
    message = str(caught.value)
    assert "a-tiny.png) is 5x5 pixels (images need at least 8x8)" in message
    assert message.count("cannot be decoded (corrupt or not an image)") == 4 and "; and 2 more: replace or remove them" in message


def test_test_split_can_come_from_another_source(tmp_path):
    write_folder(tmp_path / "a", [""])
    write_folder(tmp_path / "b", ["test"])
    options = dict(input_name="image", input_candidates=ImageClassification.spec.input_candidates)
    data = load_labelled(DataConfig(source=str(tmp_path / "a"), test_source=str(tmp_path / "b"),
                                    validation_size=0.25), **options)
    assert len(data.splits["test"]) == 24 and len(data.splits["train"]) + len(data.splits["validation"]) == 24


def test_a_corrupt_image_is_named_before_training(tmp_path):
    write_folder(tmp_path / "photos", ["train"])
    broken = tmp_path / "photos" / "train" / "red" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    options = dict(input_name="image", input_candidates=ImageClassification.spec.input_candidates)
    with pytest.raises(DataError, match=r"train row \d+ \(.*broken\.jpg\) cannot be decoded \(corrupt"):
        load_labelled(DataConfig(source=str(tmp_path / "photos")), check=ImageClassification().check_inputs, **options)
    from datasets import Dataset, Image as ImageFeature

    from mtl.data.images import verify_images

    good = next((tmp_path / "photos" / "train" / "red").glob("*.png"))  # a file that is not there: predict's reason
    split = Dataset.from_dict({"image": [str(good), str(tmp_path / "gone.png")]}).cast_column("image", ImageFeature())
    with pytest.raises(DataError, match=r"^train row 2 \(.*gone\.png\) does not exist; check the path"):
        verify_images(split, "image", "train")


def test_head_first_epochs_probe_on_cached_features_then_fine_tune(tmp_path):
    task = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=False)
    train, validation = colour_images(96, 0), colour_images(32, 1)
    options = dict(batch_size=16, learning_rate=1e-2, warmup_ratio=0.0)
    task.fit(train, validation, freeze="backbone", epochs=1, **options)
    seen = count_backbone_examples(task.model)
    stem_before = task.model.resnet.embedder.embedder.convolution.weight.detach().clone()
    result = task.fit(train, validation, freeze="none", epochs=2, head_first_epochs=3, **options)
    # one cached pass for the 3 head epochs (and the inference copy's check), then 2 full epochs
    assert seen[0] == (96 + 32 + 2 * PROBE_EXAMPLES) + 2 * (96 + 32)
    assert not (task.model.resnet.embedder.embedder.convolution.weight == stem_before).all()  # the backbone trained
    assert len(result.history) == 2 and task.freeze_report.trainable == task.freeze_report.total


def test_16_bit_integer_and_float_arrays_read_like_the_8_bit_array():
    from mtl.tasks.image_classification import to_rgb

    grey = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)
    expected = np.asarray(to_rgb(grey))
    for array in (grey.astype(np.uint16) * 257, grey.astype(np.int64), grey / 255.0, grey.astype(np.float32)):
        assert np.array_equal(np.asarray(to_rgb(array)), expected), array.dtype
    mask = grey > 127  # a boolean mask reads as PIL reads a 1-bit image: black and white
    assert np.array_equal(np.asarray(to_rgb(mask))[..., 0], np.where(mask, 255, 0))
    for array, message in ((grey.astype(np.int64) * 1000, "32-bit integer pixels"), (grey - 300.0, "float pixels")):
        with pytest.raises(DataError, match=message):
            to_rgb(array, "input 1")


def test_a_last_training_batch_of_one_image_does_not_break_batch_norm(tmp_path):
    """25 training images in batches of 8 leave one image over each epoch; MobileNetV2's last batch norm sees a
    1x1 map there, which cannot train on one image: that single example sits out (another one each epoch)."""
    from transformers import MobileNetV2Config, MobileNetV2ImageProcessor, MobileNetV2Model

    folder = tmp_path / "mobilenet"
    MobileNetV2Model(MobileNetV2Config(image_size=32, depth_multiplier=0.25, min_depth=4)).save_pretrained(folder)
    MobileNetV2ImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    result = ImageClassification(folder).fit(colour_images(25, 0), colour_images(8, 1), epochs=2, batch_size=8,
                                             learning_rate=1e-3, warmup_ratio=0.0)
    assert [h["step"] for h in result.history if "accuracy" in h] == [3, 6]  # 3 full batches an epoch
