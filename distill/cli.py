"""The command line: ``distill [flags]`` (= ``python run_distillation_pipeline.py [flags]``).

Flags are generated from ``RunConfig``, grouped as in the config. Other subcommands
(``distill serve``, ``distill worker``) are plugins found through the ``distill.commands``
entry-point group, so this core package never imports the service.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points
from typing import Any, get_args

from distill.config import RunConfig, field_groups
from distill.errors import RunCancelled, UserError
from distill.presets import PRESET_ALIASES, PRESETS
from distill.resolve import resolve_config

GROUP_TITLES = {
    "run": "run", "model": "model", "data": "data", "training": "training",
    "lora": "LoRA", "kl": "KL regularization", "evaluation": "evaluation", "engine": "generation engine",
    "teacher": "teacher (trace generation: --mode generate)",
}


def _type_of(annotation: Any) -> type:
    args = [a for a in get_args(annotation) if a is not type(None)]
    base = args[0] if args else annotation
    return base if base in (int, float, str) else str


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line naming the flag, not the whole usage."""
        self.exit(2, f"error: {message.replace('argument ', '', 1)} (distill --help lists every flag)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="distill",
        description="Reasoning distillation: SFT (LoRA, optional KL to the base model) on <think> chain-of-thought "
        "data, then base vs SFT on the same prompts. Defaults run offline on a CPU (embedded SmolLM2-135M, "
        "builtin:reasoning); --preset qwen2.5-0.5b restores the reference Qwen2.5-0.5B + OpenThoughts-114k setup. "
        "Subcommands: distill serve | distill worker | distill sweep | distill export.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", help="YAML or JSON file of field: value; flags override it")
    parser.add_argument("--list_presets", action="store_true", help="List presets and exit")
    for group, names in field_groups().items():
        g = parser.add_argument_group(GROUP_TITLES.get(group, group))
        for name in names:
            info = RunConfig.model_fields[name]
            extra = info.json_schema_extra or {}
            help_text = f"{info.description} [default: {info.default}]"
            if "reference_default" in extra:  # type: ignore[operator]
                help_text += f" (reference setup: {extra['reference_default']})"  # type: ignore[index]
            help_text = help_text.replace("%", "%%")
            if info.annotation is bool:
                g.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, help=help_text)
                continue
            choices = get_args(info.annotation) if "Literal" in str(info.annotation) else None
            g.add_argument(f"--{name}", type=_type_of(info.annotation), choices=choices or None, help=help_text,
                           metavar=name.upper() if not choices else None)
    return parser


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "huggingface_hub", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# Subcommands of the core itself (the service's come through the entry points below).
CORE_COMMANDS = {"sweep": "distill.sweep.cli", "export": "distill.export.cli"}


def _plugin(argv: list[str]) -> int | None:
    if not argv or argv[0].startswith("-"):
        return None
    if argv[0] in CORE_COMMANDS:
        from importlib import import_module

        return int(import_module(CORE_COMMANDS[argv[0]]).main(argv[1:]) or 0)
    for ep in entry_points(group="distill.commands"):
        if ep.name == argv[0]:
            return int(ep.load()(argv[1:]) or 0)
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    plugin_rc = _plugin(argv)
    if plugin_rc is not None:
        return plugin_rc
    args = vars(build_parser().parse_args(argv))
    if args.pop("list_presets", False):
        for name, p in PRESETS.items():
            print(f"{name:14s} {p['description']}")
        for alias, name in PRESET_ALIASES.items():
            print(f"{alias:14s} the same as {name}")
        return 0
    try:
        config = resolve_config(args, args.pop("config", None))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _setup_logging()
    # Imported here so that --help and validation answer without loading torch.
    from distill.pipeline import run_pipeline

    try:
        run_pipeline(config)
    except RunCancelled as e:
        print(f"cancelled: {e}", file=sys.stderr)
        return 130
    except (UserError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
