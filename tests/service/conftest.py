"""Run-service test fixtures; they live in svc_helpers.py so that tests can import the helpers too."""

from svc_helpers import (  # noqa: F401
    client,
    home,
    pg_url,
    private_redis,
    settings,
    shared_redis,
    start_worker,
    tiny_adapter_source,
)
