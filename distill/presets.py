"""Named starting points. ``demo`` is the out-of-the-box default; ``qwen2.5-0.5b`` is the reference setup
(the original distillation script's table: Qwen2.5-0.5B on OpenThoughts-114k); ``seed`` is its old name."""

from __future__ import annotations

from typing import Any

# The reference table: Qwen2.5-0.5B on OpenThoughts-114k, lr 2e-5, batch 2 x 8, 3 epochs.
_REFERENCE: dict[str, Any] = {
    "model": "Qwen/Qwen2.5-0.5B",
    "dataset": "open-thoughts/OpenThoughts-114k",
    "epochs": 3,
    "batch_size": 2,
    "gradient_accumulation": 8,
    "learning_rate": 2e-5,
    "use_lora": True,
    "lora_dropout": 0.05,
    "use_kl_regularization": True,
    "kl_coef": 0.1,
    "early_stopping_patience": 3,
    "max_grad_norm": 1.0,
    "max_seq_length": 4096,
    # Evaluated the way the field reports distilled reasoners (DeepSeek-R1, open-r1): MATH-500, AIME 2024 and
    # GPQA-Diamond, 4 samples per problem at temperature 0.6 / top-p 0.95, long budgets. At these lengths
    # generation wants vLLM: a GPU worker with --engine vllm, or --engine openai with --engine_url.
    "benchmarks": ["math500", "aime24", "gpqa_diamond"],
    "num_samples": 4,
    "temperature": 0.6,
    "top_p": 0.95,
    "max_new_tokens": 32768,
    "general_prompts": False,
}

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        # Measured: 5 min 53 s on 2 CPU cores, bf16 training (docs/benchmarks.md §3); the plain defaults: about an hour.
        "description": "200 built-in problems, 1 epoch (the embedded SmolLM2-135M), base vs SFT on 100 held-out "
                       "— about 6 min on 2 CPU cores",
        "config": {"model": "smollm2-135m", "dataset": "builtin:reasoning", "max_samples": 200, "epochs": 1,
                   "learning_rate": 1e-3, "batch_size": 2, "gradient_accumulation": 2, "eval_samples": 100},
    },
    "gsm8k-135m": {
        "description": "SmolLM2-135M on GSM8K's training problems (openai/gsm8k:main, or --dataset a local train.jsonl): "
                       "lr 3e-4 with the KL term, 500 rows; evaluated sampled (0.6 / 0.95) with a 192-token thinking "
                       "budget on 100 held-out problems (docs/recipes.md)",
        "config": {"model": "smollm2-135m", "dataset": "openai/gsm8k:main", "max_samples": 500, "epochs": 1,
                   "learning_rate": 3e-4, "batch_size": 4, "gradient_accumulation": 2, "use_kl_regularization": True,
                   "kl_coef": 0.1, "eval_samples": 100, "benchmarks": ["heldout"], "general_prompts": False,
                   "temperature": 0.6, "top_p": 0.95, "max_thinking_tokens": 192, "max_new_tokens": 320},
    },
    "traces-demo": {
        "description": "Trace generation on 2 CPU cores (docs/recipes.md): a finished demo run as the teacher (give "
                       "--teacher_model: run-N on the service, or its final_model folder) writes 4 traces for each of "
                       "800 fresh built-in problems; the verified ones become dataset.jsonl",
        "config": {"mode": "generate", "model": "smollm2-135m", "dataset": "builtin:reasoning?skip=200",
                   "max_samples": 800, "num_generations": 4, "teacher_prompt": "{problem}",
                   "teacher_max_tokens": 256, "keep": "all_correct"},
    },
    "qwen2.5-0.5b": {
        "description": "The reference setup: Qwen/Qwen2.5-0.5B on OpenThoughts-114k (GPU recommended)",
        "config": _REFERENCE,
    },
    "qwen2.5-1.5b": {
        "description": "Qwen/Qwen2.5-1.5B on OpenThoughts-114k (GPU, ~16 GB)",
        "config": {**_REFERENCE, "model": "Qwen/Qwen2.5-1.5B", "batch_size": 2, "gradient_accumulation": 8},
    },
    "qwen2.5-7b": {
        "description": "Qwen/Qwen2.5-7B on OpenThoughts-114k (GPU, 40 GB+, LoRA)",
        "config": {**_REFERENCE, "model": "Qwen/Qwen2.5-7B", "batch_size": 1, "gradient_accumulation": 16, "learning_rate": 1e-4},
    },
    "llama-2-7b": {
        "description": "meta-llama/Llama-2-7b-hf on OpenThoughts-114k (GPU, 40 GB+, LoRA; 4k context)",
        "config": {**_REFERENCE, "model": "meta-llama/Llama-2-7b-hf", "batch_size": 1, "gradient_accumulation": 16,
                   "learning_rate": 1e-4, "max_seq_length": 4096},
    },
    "llama-3.1-8b": {
        "description": "meta-llama/Llama-3.1-8B on OpenThoughts-114k (GPU, 40 GB+, LoRA)",
        "config": {**_REFERENCE, "model": "meta-llama/Llama-3.1-8B", "batch_size": 1, "gradient_accumulation": 16,
                   "learning_rate": 1e-4},
    },
}

# Old names that still work.
PRESET_ALIASES: dict[str, str] = {"seed": "qwen2.5-0.5b"}


def preset_config(name: str) -> dict[str, Any] | None:
    """A preset's fields by name or alias; None for an unknown name."""
    preset = PRESETS.get(PRESET_ALIASES.get(name, name))
    return preset["config"] if preset else None
