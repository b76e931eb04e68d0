"""Sweeps: a base configuration plus axes, expanded into ordinary runs, ending with a verdict that respects
the paired tests (``plan.py`` expands and validates, ``run.py`` runs the points, ``verdict.py`` judges)."""
