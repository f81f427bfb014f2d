"""Modeling: a pretrained checkpoint becomes a classifier for the user's labels (new head, MLP heads, freezing).

Example::

    from mtl.modeling import apply_freezing, build_classifier
    model = build_classifier(AutoModelForSequenceClassification, folder, ["negative", "positive"])
    apply_freezing(model, "backbone")
"""

from .classifier import build_classifier, label_config, scratch_model
from .freezing import FreezeReport, apply_freezing, head_parameter_names
from .heads import attach_mlp_head

__all__ = ["FreezeReport", "apply_freezing", "attach_mlp_head", "build_classifier", "head_parameter_names",
           "label_config", "scratch_model"]
