"""Recipe YAML: ``yaml.safe_load`` with YAML 1.2 booleans, so the words yes/no/on/off stay words, and no key
given twice.

Example::

    parse_yaml("keywords: [yes, no, on, off]")   # {'keywords': ['yes', 'no', 'on', 'off']}
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _RecipeLoader(yaml.SafeLoader):
    """YAML with 1.2 booleans: only true/false; yes/no/on/off stay words (they are Speech Commands keywords).
    A key given twice in one mapping is an error, not a silent last-one-wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:  # the section's own keys (a "<<" merge may be overridden, as YAML allows)
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"the key {key_node.value!r} is given twice "
                                                            "in one section; keep one", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def parse_yaml(text: str) -> Any:
    """Parse recipe YAML (``yaml.safe_load`` with YAML 1.2 booleans)."""
    return yaml.load(text, Loader=_RecipeLoader)
