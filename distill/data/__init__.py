"""Reasoning data: formats, sources, the built-in generator, and training-row preparation."""
