"""Configuration: typed recipe sections, their schema checks and recipe YAML; a leaf that imports only mtl.errors.

Example::

    from mtl.config import TrainConfig, schema
    problems: list[str] = []
    schema.build(TrainConfig, {"epoch": 3}, "train", problems)   # ["train.epoch: unknown key; did you mean 'epochs'?"]
"""

from .freeze import FreezeSpec, parse_freeze
from .sections import (CompareConfig, DataConfig, HeadConfig, HubConfig, ModelConfig, OutputConfig, Recipe,
                       TrainConfig)
from .yaml_text import parse_yaml

__all__ = ["CompareConfig", "DataConfig", "FreezeSpec", "HeadConfig", "HubConfig", "ModelConfig", "OutputConfig",
           "Recipe", "TrainConfig", "parse_freeze", "parse_yaml"]
