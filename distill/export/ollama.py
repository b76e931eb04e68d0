"""An Ollama ``Modelfile`` beside a GGUF: the model's ChatML template with the ``<think>`` turn, its stops,
its context length, and the system prompt the run trained with."""

from __future__ import annotations

import re

# ChatML as the model's own template writes it (``<|im_start|>role\n…<|im_end|>\n``), in Ollama's Go template
# language: system messages are collected in .System; an assistant turn's thought (Ollama parses ``<think>`` out
# of the output into .Thinking) is put back in the trained form ``<think>\n…\n</think>\n\n`` before its answer.
TEMPLATE = """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Thinking }}<think>
{{ .Thinking }}
</think>

{{ end }}{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}"""
STOPS = ("<|im_end|>", "<|im_start|>")
MAX_NUM_CTX = 8192  # the model may allow more; Ollama allocates the whole context up front


def template_default_system(chat_template: str | None) -> str | None:
    """The system prompt a ChatML template inserts when a conversation has none (SmolLM2's does)."""
    match = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", chat_template or "", re.S)
    return match.group(1) if match else None


def _quoted(text: str) -> str:
    return '"""' + text.replace('"""', '\\"\\"\\"') + '"""'


def modelfile(gguf_name: str, system: str | None, context_length: int | None) -> str:
    """The Modelfile text: ``FROM ./gguf_name`` (the file beside it)."""
    lines = [f"FROM ./{gguf_name}", "", f"TEMPLATE {_quoted(TEMPLATE)}", ""]
    if system:
        lines += [f"SYSTEM {_quoted(system)}", ""]
    lines += [f'PARAMETER stop "{stop}"' for stop in STOPS]
    lines.append(f"PARAMETER num_ctx {min(context_length or MAX_NUM_CTX, MAX_NUM_CTX)}")
    return "\n".join(lines) + "\n"
