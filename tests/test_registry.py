"""The task registry and the contract every registered task meets."""

from __future__ import annotations

import dataclasses

import pytest
import transformers

from mtl.errors import MtlError
from mtl.registry import get_task, known_tasks
from mtl.task import register_task
from mtl.task import Task


def test_builtin_tasks_are_registered_and_importable_from_mtl_tasks():
    from mtl.tasks import ImageClassification, TextSentiment

    assert get_task("text-sentiment") is TextSentiment
    assert get_task("image-classification") is ImageClassification
    assert {"text-sentiment", "image-classification"} <= set(known_tasks())


def test_unknown_task_lists_known_ones_with_did_you_mean():
    with pytest.raises(MtlError) as info:
        get_task("text-sentimnt")
    message = str(info.value)
    assert "did you mean 'text-sentiment'?" in message
    assert "Known tasks: " in message and "text-sentiment" in message.split("Known tasks: ")[1]


def test_duplicate_task_name_is_rejected():
    with pytest.raises(ValueError, match="already registered"):
        @register_task("text-sentiment")
        class Another(Task):  # noqa: F841
            pass


@pytest.mark.parametrize("name", known_tasks())
def test_task_contract(name):
    """Every registered task declares checkpoint, Auto classes, columns, options and metrics."""
    cls = get_task(name)
    spec = cls.spec
    assert cls.name == name
    assert hasattr(transformers, spec.model_class) and hasattr(transformers, spec.processor_class)
    assert spec.default_checkpoint and spec.input_column and spec.input_column in spec.input_candidates
    assert spec.pipeline_tag and spec.metrics
    assert dataclasses.is_dataclass(cls.Options)
    cls.Options()  # defaults are valid
    if cls.transforms_on_the_fly:
        assert cls.transform is not Task.transform
    else:
        assert cls.preprocess is not Task.preprocess
    for hook in ("tiny_checkpoint", "synthetic_examples", "sample_inputs"):  # what the behaviour contract needs
        assert getattr(cls, hook) is not getattr(Task, hook), f"{name} does not provide {hook}"
    assert spec.file_suffixes and all(s.startswith(".") and s == s.lower() for s in spec.file_suffixes)
