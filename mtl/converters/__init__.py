"""Converters from weight formats that PyPI packages carry into plain transformers folders."""
