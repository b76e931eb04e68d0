"""Distill Studio dashboard (Gradio): talks to the run service only through its REST API (see ui.client)."""
