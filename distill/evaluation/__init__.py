"""Scoring model responses: answer extraction, per-response metrics, per-model summaries."""

from distill.evaluation.answers import answers_match, extract_answer, normalize_number
from distill.evaluation.metrics import response_metrics
from distill.evaluation.summary import deltas, format_summary_block, summarize

__all__ = [
    "answers_match",
    "deltas",
    "extract_answer",
    "format_summary_block",
    "normalize_number",
    "response_metrics",
    "summarize",
]
