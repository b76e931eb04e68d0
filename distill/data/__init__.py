"""Reasoning data: formats, sources, the built-in generator, and training-row preparation."""

from distill.data.builtin import SYSTEM_PROMPT, generate_rows
from distill.data.formats import (
    final_answer_from_solution,
    normalize_row,
    to_target_text,
)
from distill.data.prepare import (
    data_report,
    ensure_chat_template,
    render_chatml,
    split_train_val,
    to_prompt_completion,
    token_length_stats,
)
from distill.data.schema import (
    BadRow,
    DataFormatError,
    DataSourceError,
    ReasoningExample,
)
from distill.data.sources import BUILTIN_SOURCE, DataStats, iter_rows, load_examples

__all__ = [
    "BUILTIN_SOURCE",
    "SYSTEM_PROMPT",
    "BadRow",
    "DataFormatError",
    "DataSourceError",
    "DataStats",
    "ReasoningExample",
    "data_report",
    "ensure_chat_template",
    "final_answer_from_solution",
    "generate_rows",
    "iter_rows",
    "load_examples",
    "normalize_row",
    "render_chatml",
    "split_train_val",
    "to_prompt_completion",
    "to_target_text",
    "token_length_stats",
]
