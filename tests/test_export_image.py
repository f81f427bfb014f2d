"""ONNX export and the predict CLI for an image model (tiny ViT trained a few steps), parity checked on real images."""

from __future__ import annotations

import json

import pytest

from test_image_classification import build_model, colour_images


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    from mtl.tasks import ImageClassification

    root = tmp_path_factory.mktemp("image")
    task = ImageClassification(build_model("vit", root / "vit"))
    task.fit(colour_images(24, 0), colour_images(8, 1), max_steps=2, batch_size=12)
    task.save(root / "out")
    images = root / "images"
    images.mkdir()
    for i, image in enumerate(colour_images(5, 3)["image"]):
        image.save(images / f"{i}.png")
    return root / "out", images, task


def test_onnx_export_of_an_image_model_matches_pytorch(image_model):
    pytest.importorskip("onnxruntime")
    from mtl.publish.onnx import export_onnx
    from mtl.registry import load_saved_task

    out, images, _ = image_model
    result = export_onnx(load_saved_task(out), out, samples=sorted(str(p) for p in images.iterdir()))
    assert result.input_names == ["pixel_values"] and result.num_inputs == 5
    assert result.max_abs_diff <= 1e-4
    assert (out / "onnx" / "model.onnx").is_file() and (out / "onnx" / "preprocessor_config.json").is_file()


@pytest.mark.parametrize("opset, message", [("5", "mtl exports ONNX opsets 18 to"), ("99", "mtl exports ONNX opsets")])
def test_an_opset_the_exporter_cannot_write_is_one_message(image_model, opset, message, capsys):
    pytest.importorskip("onnxruntime")
    from mtl.export import main

    out, _, _ = image_model
    assert main([str(out), "--onnx", "--opset", opset, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --opset") and message in err and "Traceback" not in err


def test_the_opset_asked_for_is_the_opset_written(image_model, tmp_path):
    pytest.importorskip("onnxruntime")
    import shutil

    import onnx

    from mtl.publish.onnx import export_onnx
    from mtl.registry import load_saved_task

    out = shutil.copytree(image_model[0], tmp_path / "out")
    export_onnx(load_saved_task(out), out, opset=19)
    model = onnx.load(str(out / "onnx" / "model.onnx"))
    assert [e.version for e in model.opset_import if e.domain in ("", "ai.onnx")] == [19]


def test_predict_cli_reads_an_image_folder(image_model, tmp_path):
    from mtl.predict import main

    out, images, task = image_model
    assert main([str(out), str(images), "--output", str(tmp_path / "p.json")]) == 0
    rows = json.loads((tmp_path / "p.json").read_text())
    paths = sorted(str(p) for p in images.iterdir())
    assert [r["input"] for r in rows] == paths
    assert [r["label"] for r in rows] == [p["label"] for p in task.predict(paths)]
