"""The one generation path: every answer the project generates goes through an engine (engine.py)."""
