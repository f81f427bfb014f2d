"""BitFit (Ben Zaken, Ravfogel and Goldberg, ACL 2022): only the bias terms of the backbone train, with the head;
about 0.1% of a BERT's parameters, close to full fine-tuning on small and medium GLUE sets in the paper.

``model.freeze: bitfit``. Also the example of a freezing strategy written as one file (see
:mod:`mtl.strategies`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from . import FreezeStrategy, register_freeze_strategy


@register_freeze_strategy
class BitFit(FreezeStrategy):
    name = "bitfit"

    def trainable(self, model: nn.Module, head: set[str], settings: dict[str, Any]) -> set[str]:
        return head | {name for name, _ in model.named_parameters() if name.rsplit(".", 1)[-1] == "bias"}

    def describe(self, settings: dict[str, Any]) -> str:
        return "bitfit (the backbone's biases and the head train)"
