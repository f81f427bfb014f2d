"""Offline metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mtl.errors import MtlError
from mtl.metrics import classification_details, compute_metrics, is_better, scores_from_logits


def test_accuracy_and_macro_f1_match_hand_computation():
    labels = [0, 0, 1, 1, 1, 2]
    preds = [0, 1, 1, 1, 0, 2]
    scores = compute_metrics(labels, preds, ["accuracy", "macro_f1"])
    # class 0: p=1/2 r=1/2 f=1/2; class 1: p=2/3 r=2/3 f=2/3; class 2: f=1
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)


def test_per_class_report_and_confusion_matrix():
    details = classification_details([0, 0, 1, 1], [0, 1, 1, 1], ["neg", "pos"])
    assert details["confusion_matrix"] == [[1, 1], [0, 2]]
    assert details["per_class"]["neg"]["recall"] == pytest.approx(0.5)
    assert details["per_class"]["pos"]["precision"] == pytest.approx(2 / 3)
    assert details["per_class"]["pos"]["support"] == 2


def test_scores_from_logits_include_cross_entropy():
    logits = np.log(np.array([[0.8, 0.2], [0.25, 0.75]], dtype=np.float32))
    scores = scores_from_logits(logits, np.array([0, 0]), ["accuracy"])
    assert scores["accuracy"] == 0.5
    assert scores["loss"] == pytest.approx(-(np.log(0.8) + np.log(0.25)) / 2, rel=1e-5)


def test_unknown_metric_without_hub_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MtlError, match="'no_such_metric_xyz' is not built in"):
        compute_metrics([0, 1], [0, 1], ["no_such_metric_xyz"])


def test_fit_names_a_misspelt_metric_before_matching_metric_for_best(monkeypatch, tiny_bert):
    from mtl.tasks import TextSentiment

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MtlError, match="'accuracyy' is not built in; did you mean 'accuracy'"):
        TextSentiment(tiny_bert).fit({"text": ["good", "bad"] * 10, "label": [1, 0] * 10}, metrics=["accuracyy"])


def test_loss_is_lower_is_better():
    assert is_better("loss", 0.2, 0.3) and not is_better("accuracy", 0.2, 0.3) and is_better("accuracy", 0.1, None)
