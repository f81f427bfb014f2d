"""Image classification: a pretrained image model (ViT, ResNet, ConvNeXt, EfficientNet, timm) with a new head.

Images are decoded once into RGB uint8 pixels (cached; a shorter side above 512 pixels is scaled down to 512)
and turned into tensors when they are read, never cached as floats: optional augmentation (train only), then
the checkpoint's own image processor (resize, crop, normalise with its mean/std).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import io

import numpy as np
import torch
from datasets import Dataset
from PIL import Image

from mtl.data.images import IMAGE_SUFFIXES, MIN_SIDE, eight_bit, image_from_array, unreadable, verify_images
from mtl.errors import DataError, RecipeError, describe
from mtl.task import Task, TaskSpec, register_task
from mtl.task.decoding import decoded_inputs, is_decoded


@dataclass
class ImageOptions:
    """Train-time augmentation (recipe section ``preprocess``); evaluation is always deterministic."""

    random_resized_crop: bool = True  # crop 60-100% of the area at a random place, resized back
    horizontal_flip: bool = False  # off by default: digits and text-like images change meaning when flipped
    rotation: float = 0.0  # at most this many degrees either way
    image_size: int | None = None  # resize and center-crop to this many pixels (default: the checkpoint's size)

    def __post_init__(self) -> None:
        if not 0 <= self.rotation <= 180:
            raise ValueError(f"rotation must be between 0 and 180 degrees, got {self.rotation}")
        if self.image_size is not None and not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be between 16 and 1024 pixels, got {self.image_size}")


def to_rgb(image: Any, where: str = "image") -> Image.Image:
    """A PIL RGB image from a PIL image, a numpy array (HxW or HxWxC, uint8 or [0, 1] floats), a file path or
    a ``{"bytes", "path"}`` dict; empty, non-finite or smaller than 8x8 images are :class:`DataError`s naming ``where``
    (and the file). Training decode and predict both come here: 16-bit and float images are scaled to 8 bits by
    :func:`~mtl.data.images.eight_bit` (``pipeline("image-classification")`` does not: it clips them)."""
    named = f"{where} ({name})" if (name := _file_name(image)) else where
    if isinstance(image, dict):
        image = io.BytesIO(image["bytes"]) if image.get("bytes") else image.get("path")
    if isinstance(image, (str, Path, io.BytesIO)):
        try:
            with Image.open(image) as opened:
                image = opened.copy()
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise DataError(f"{named}: {unreadable(error)}") from None
    elif isinstance(image, (np.ndarray, list, tuple)):  # nested lists: a (N, H, W, C) array a table split by row
        try:
            array = np.asarray(image)
        except ValueError:  # ragged rows
            raise DataError(f"{where}: the image's rows have different lengths; give an HxW or HxWxC array") from None
        if array.ndim not in (2, 3) or array.size == 0 or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
            raise DataError(f"{where}: an image array is HxW or HxWxC (C = 1, 3 or 4), got shape {array.shape}")
        if array.dtype != bool and (not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all()):
            raise DataError(f"{where}: the image array holds NaN, infinite or non-numeric values; fix the array")
        image = image_from_array(array, where)
    if not isinstance(image, Image.Image):
        raise DataError(f"{where}: expected a PIL image, numpy array or file path, got {type(image).__name__}")
    if min(image.size) < MIN_SIDE:
        raise DataError(f"{named}: the image is {image.size[0]}x{image.size[1]} pixels; images need at least "
                        f"{MIN_SIDE}x{MIN_SIDE} pixels to classify")
    return eight_bit(image, named).convert("RGB")


def _file_name(image: Any) -> str | None:
    """The file an image input comes from (a path, or a ``{"path"}`` dict), when it names one."""
    path = image.get("path") if isinstance(image, dict) else image
    return str(path) if isinstance(path, (str, Path)) and path else None


def with_image_size(processor: Any, size: int) -> Any:
    """The same image processor (mean, std, interpolation, crop ratio kept) producing ``size`` x ``size`` inputs.

    Convolutional backbones (ResNet, ConvNeXt, EfficientNet) accept any size; ViT-style models need their own.
    """
    if _is_timm(processor):
        config = {**processor.data_config, "input_size": (3, size, size)}
        return type(processor)(pretrained_cfg=config, architecture=processor.architecture)
    crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    if crop:
        old_size = processor.size.get("shortest_edge") or processor.size.get("height")
        processor.size = {"shortest_edge": round(size * old_size / crop["height"])}
        processor.crop_size = {"height": size, "width": size}
    else:
        processor.size = {"height": size, "width": size}
    return processor


DECODE_MAX_SIDE = 512  # decoded training / evaluation images keep at most this shorter side (processors resize anyway)


def decoded_pixels(images: Sequence[Image.Image]) -> dict[str, list[Any]]:
    """RGB images as the decoded columns: raw uint8 bytes and ``[height, width]``."""
    return {"pixels": [image.tobytes() for image in images], "size": [[image.height, image.width] for image in images]}


def _capped(image: Image.Image) -> Image.Image:
    side = min(image.size)
    if side <= DECODE_MAX_SIDE:
        return image
    scale = DECODE_MAX_SIDE / side
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC,
                        reducing_gap=3.0)


def _is_timm(processor: Any) -> bool:
    return type(processor).__name__ == "TimmWrapperImageProcessor"


@register_task("image-classification")
class ImageClassification(Task):
    """Classify images into the user's labels."""

    spec = TaskSpec(
        modality="image",
        model_class="AutoModelForImageClassification",
        processor_class="AutoImageProcessor",
        default_checkpoint="timm/tf_efficientnet_lite0.in1k",
        checkpoints=("timm/tf_efficientnet_lite1.in1k", "timm/tf_efficientnet_lite2.in1k", "timm/mobilenetv2_100.ra_in1k",
                     "google/vit-base-patch16-224-in21k", "microsoft/resnet-50", "facebook/convnext-tiny-224"),
        input_column="image",
        input_candidates=("image", "img", "picture", "photo", "pixel_values"),
        pipeline_tag="image-classification",
        file_suffixes=IMAGE_SUFFIXES,
        intended_use="images like those it was trained on (same kind of subject, framing and resolution)",
    )
    Options = ImageOptions
    transforms_on_the_fly = True
    decoded_columns = ("pixels", "size")  # RGB uint8 bytes, [height, width]

    def load_processor(self, folder: Path) -> Any:
        processor = super().load_processor(folder)
        return with_image_size(processor, self.options.image_size) if self.options.image_size else processor

    def check_model(self) -> None:
        """A model with fixed position embeddings (ViT, DeiT, BEiT) takes only its own image size: a different
        ``image_size`` is refused here, before training, with the size it takes."""
        size = self.options.image_size
        if not size:
            return
        training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                self.model(pixel_values=torch.zeros(1, 3, size, size))
        except (ValueError, RuntimeError) as error:
            own = getattr(self.model.config, "image_size", None)
            takes = f"it takes {own}-pixel images; " if isinstance(own, int) else ""
            reason = describe(error).rstrip(".")
            raise RecipeError([f"preprocess.image_size: checkpoint {self.checkpoint} cannot take {size}-pixel images "
                               f"({reason}); {takes}leave image_size out to use the checkpoint's own size, or choose "
                               "a convolutional checkpoint, which takes any size"]) from None
        finally:
            self.model.train(training)

    def write_model(self, directory: Path) -> Path:
        if _is_timm(self.processor):  # transformers rebuilds a timm processor from the model config's pretrained_cfg
            data = self.processor.data_config
            self.model.config.pretrained_cfg = {**self.model.config.pretrained_cfg, **data,
                                                "input_size": list(data["input_size"])}
        return super().write_model(directory)

    def decode(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return decoded_pixels([_capped(to_rgb(image)) for image in batch["image"]])

    def decode_settings(self) -> Any:
        return {"pixels": "rgb-uint8", "max_side": DECODE_MAX_SIDE}

    def transform(self, batch: dict[str, list[Any]], *, train: bool) -> dict[str, Any]:
        if "pixels" not in batch:  # raw images (a batch given directly)
            batch = {**batch, **decoded_pixels([to_rgb(image) for image in batch["image"]])}
        images = [Image.fromarray(np.frombuffer(pixels, np.uint8).reshape(height, width, 3))
                  for pixels, (height, width) in zip(batch["pixels"], batch["size"])]
        if train:
            augment = self._augmentation()
            images = [augment(image) for image in images] if augment else images
        features = {"pixel_values": self.processor(images, return_tensors="pt")["pixel_values"]}
        if "label" in batch:
            features["labels"] = torch.as_tensor(batch["label"])
        return features

    def inputs_to_dataset(self, inputs: Sequence[Any]) -> Dataset:
        images = [to_rgb(image, f"input {i + 1}") for i, image in enumerate(inputs)]
        return Dataset.from_dict(decoded_pixels(images))

    def check_inputs(self, split: Dataset, column: str, where: str) -> None:
        """Every image opens (each bad one named); then decoded once, so a re-run opens no file again."""
        if not is_decoded(self, split, column):
            verify_images(split, column, where)
            decoded_inputs(self, split, column)

    def check_files(self, paths: list[str], where: str) -> None:
        verify_images(Dataset.from_dict({"image": paths}), "image", where)

    def sample_inputs(self, count: int = 4, seed: int = 0) -> list[Any]:
        rng = np.random.default_rng(seed)
        return [Image.fromarray(rng.integers(0, 256, (48 + 16 * i, 64, 3), dtype=np.uint8)) for i in range(count)]

    def usage_input(self) -> str:
        return '"photo.jpg"'

    @classmethod
    def tiny_checkpoint(cls, folder: Path) -> Path:
        """A 2-layer ViT on 32-pixel images with its image processor."""
        from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

        torch.manual_seed(0)
        ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=64)).save_pretrained(folder)
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
        return folder

    @classmethod
    def synthetic_examples(cls, count: int, seed: int = 0) -> dict[str, list[Any]]:
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

    def _augmentation(self):
        if not hasattr(self, "_augment"):
            from torchvision.transforms import v2

            steps = []
            if self.options.rotation:
                steps.append(v2.RandomRotation(self.options.rotation))
            if self.options.horizontal_flip:
                steps.append(v2.RandomHorizontalFlip())
            self._augment = (v2.Compose(steps) if steps else None), self.options.random_resized_crop
        transform, crop = self._augment
        if not crop:
            return transform

        def crop_then(image: Image.Image) -> Image.Image:
            from torchvision.transforms import v2

            image = v2.RandomResizedCrop(image.size[::-1], scale=(0.6, 1.0), antialias=True)(image)
            return transform(image) if transform else image

        return crop_then
