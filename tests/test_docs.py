"""The README says what the code does: every key of every recipe section is in its recipe table."""

from __future__ import annotations

import dataclasses
import re

import pytest

from conftest import REPO
from mtl.config import sections
from mtl.registry import get_task, known_tasks

SECTIONS = {"model": sections.ModelConfig, "data": sections.DataConfig, "train": sections.TrainConfig,
            "output": sections.OutputConfig, "hub": sections.HubConfig, "compare": sections.CompareConfig,
            "select": sections.SelectConfig}


def recipe_table() -> dict[str, str]:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| section | keys |"):].split("\n\n", 1)[0]
    rows = [line.split("|") for line in table.splitlines()[2:]]
    return {re.sub(r"[`\s]", "", row[1]): row[2] for row in rows}


def documented(text: str) -> set[str]:
    """Every name written inside a backtick span of the row (`key`, `{type: mlp, hidden: [1024]}`)."""
    return {word for span in re.findall(r"`([^`]*)`", text) for word in re.findall(r"[a-z_]+", span)}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_key_of_every_section_is_documented(section):
    keys = {field.name for field in dataclasses.fields(SECTIONS[section])}
    if section == "model":
        keys |= {field.name for field in dataclasses.fields(sections.HeadConfig)}
    missing = keys - documented(recipe_table()[section])
    assert not missing, f"README recipe table, section {section}: undocumented keys {sorted(missing)}"


def test_every_task_option_is_documented():
    documented_options = documented(recipe_table()["preprocess"])
    for name in known_tasks():
        options = {field.name for field in dataclasses.fields(get_task(name).Options)}
        assert options <= documented_options, f"{name}: undocumented preprocess keys {sorted(options - documented_options)}"


def test_every_recipe_section_has_a_row():
    assert set(recipe_table()) == {"task", "metrics", "preprocess", *SECTIONS}
