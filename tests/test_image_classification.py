"""Image classification on tiny models built from configs: learning, image folders, the pipeline round trip."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from mtl.data import load_labelled
from mtl.errors import DataError
from mtl.recipe import DataConfig
from mtl.tasks import ImageClassification
from mtl.tasks.image_classification import to_rgb

from conftest import pipeline_top1


def colour_images(count: int, seed: int) -> dict[str, list]:
    """Noisy 28x28 images; 'red' ones have a saturated red channel, 'dark' ones do not."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(count):
        array = rng.integers(0, 80, (28, 28, 3)).astype(np.uint8)
        if i % 2:
            array[:, :, 0] = 230
        images.append(Image.fromarray(array))
        labels.append("red" if i % 2 else "dark")
    return {"image": images, "label": labels}


def build_model(kind: str, folder):
    from transformers import (ResNetConfig, ResNetForImageClassification, ViTConfig, ViTForImageClassification,
                              ViTImageProcessor)
    import torch

    torch.manual_seed(0)
    if kind == "vit":
        model = ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                                    num_attention_heads=2, intermediate_size=64))
    else:
        model = ResNetForImageClassification(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]))
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["vit", "resnet"])
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


def test_evaluation_is_deterministic_and_training_is_augmented(tmp_path):
    task = ImageClassification(build_model("vit", tmp_path / "m"), rotation=20, horizontal_flip=True)
    task.prepare()
    batch = {"image": colour_images(4, 5)["image"], "label": [0, 1, 0, 1]}
    plain = task.transform(batch, train=False)["pixel_values"]
    assert plain.shape == (4, 3, 32, 32)
    assert (plain == task.transform(batch, train=False)["pixel_values"]).all()
    assert not (task.transform(batch, train=True)["pixel_values"] == plain).all()


def test_inputs_become_rgb_and_bad_inputs_are_named(tmp_path):
    assert to_rgb(np.zeros((5, 6), dtype=np.uint8)).size == (6, 5)
    assert to_rgb(np.ones((5, 6, 1), dtype=np.float32)).getpixel((0, 0)) == (255, 255, 255)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match="input 2: cannot read image"):
        ImageClassification("unused").inputs_to_dataset([np.zeros((4, 4, 3), dtype=np.uint8), str(broken)])
    with pytest.raises(DataError, match="expected a PIL image"):
        to_rgb(42)


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
