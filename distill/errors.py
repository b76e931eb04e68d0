"""Errors that are the user's to fix: shown as one line, never as a traceback."""

from distill.config import ConfigError
from distill.data.schema import DataFormatError
from distill.data.sources import DataSourceError
from distill.distributed import DistributedTrainingError
from distill.models import ModelUnavailableError

USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError, DataFormatError, DataSourceError, ModelUnavailableError, FileNotFoundError,
    DistributedTrainingError,  # one line; the ranks' own output is in the log above it
)
