"""Modeling: a pretrained checkpoint becomes a classifier for the user's labels (new head, MLP heads, freezing);
:func:`classifier_head` is the one place that says where a model's head is.

Example::

    from mtl.modeling import apply_freezing, build_classifier
    model = build_classifier(AutoModelForSequenceClassification, folder, ["negative", "positive"])
    apply_freezing(model, "backbone")
"""

from .classifier import attach_mlp_head, build_classifier, label_config, scratch_model
from .freezing import FreezeReport, apply_freezing
from .locate import ClassifierHead, classifier_head, head_parameter_names, output_layer_name

__all__ = ["ClassifierHead", "FreezeReport", "apply_freezing", "attach_mlp_head", "build_classifier", "classifier_head",
           "head_parameter_names", "label_config", "output_layer_name", "scratch_model"]
