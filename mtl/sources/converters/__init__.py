"""Converters that turn a mirror package's files (another format) into a transformers folder."""
