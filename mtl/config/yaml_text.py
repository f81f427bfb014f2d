"""Recipe YAML: ``yaml.safe_load`` with YAML 1.2 booleans, so the words yes/no/on/off stay words.

Example::

    parse_yaml("keywords: [yes, no, on, off]")   # {'keywords': ['yes', 'no', 'on', 'off']}
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _RecipeLoader(yaml.SafeLoader):
    """YAML with 1.2 booleans: only true/false; yes/no/on/off stay words (they are Speech Commands keywords)."""


_RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def parse_yaml(text: str) -> Any:
    """Parse recipe YAML (``yaml.safe_load`` with YAML 1.2 booleans)."""
    return yaml.load(text, Loader=_RecipeLoader)
