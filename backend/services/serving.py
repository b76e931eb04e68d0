"""Every finished run's models, served in-process for ``/v1`` and the Playground: the wiring of
:mod:`distill.generation.server` (the adapter cache and the batching scheduler live there) into the service.

- The server is built from the settings (``max_adapters``, ``max_batch_rows``, ``max_pending_rows``).
- Model ids: ``run-N`` (the SFT model of run N), ``run-N:base`` and the base model's own id
  (e.g. ``smollm2-135m``); ``backend.services.catalog`` says what each stands for (a run's adapter or
  full-model folder), as a :class:`Served`.
- Its errors are domain errors (``distill.generation.server.ServingError``); ``backend.errors`` answers them
  (404, 429 with Retry-After, 503).
"""

from __future__ import annotations

from backend.errors import NotFound
from backend.config import Settings
from distill.generation.server import ModelServer, Served

__all__ = ["BASE_SUFFIX", "ModelServer", "Served", "model_server", "not_found"]

BASE_SUFFIX = ":base"


def model_server(settings: Settings) -> ModelServer:
    """The service's model server, as the settings size it."""
    return ModelServer(max_adapters=settings.max_adapters, max_batch_rows=settings.max_batch_rows,
                       max_pending=settings.max_pending_rows)


def not_found(model_id: str) -> NotFound:
    return NotFound(f"The model '{model_id}' does not exist")
