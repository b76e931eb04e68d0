"""``distill export RUN --to gguf|ollama|hub``: a finished run's model out of the studio (files under RUN/exports/)."""

from __future__ import annotations

import argparse
import logging
import sys

from distill.errors import UserError
from distill.export.gguf import CONVERTER_TYPES, QUANTIZER_TYPES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="distill export", description=__doc__)
    p.add_argument("run", help="The run folder (DISTILL_HOME/…/run_…) whose model to export")
    p.add_argument("--to", required=True, choices=("gguf", "ollama", "hub"),
                   help="gguf: llama.cpp files; ollama: a GGUF and its Modelfile; hub: upload to the Hugging Face Hub")
    p.add_argument("--quant", action="append", default=[], metavar="TYPE",
                   help=f"GGUF type, repeatable: {', '.join(CONVERTER_TYPES)} (llama.cpp's converter; default f16), "
                        f"{', '.join(QUANTIZER_TYPES)} (llama.cpp's quantizer, needs llama-cpp-python); with --to "
                        "hub the GGUF files are uploaded too")
    p.add_argument("--repo-id", help="Hub: the repository, owner/name")
    vis = p.add_mutually_exclusive_group()
    vis.add_argument("--private", dest="private", action="store_true", default=True,
                     help="Hub: create the repository private (the default)")
    vis.add_argument("--public", dest="private", action="store_false", help="Hub: create the repository public")
    p.add_argument("--revision", help="Hub: the branch to commit to (created when missing; default main)")
    p.add_argument("--create-pr", action="store_true", help="Hub: open a pull request instead of committing")
    p.add_argument("--weights", choices=("merged", "adapter"), default="merged",
                   help="Hub: the merged model (loads alone) or the LoRA adapter (small; needs its base)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    from distill.export.run import ExportRequest, export_run

    request = ExportRequest(to=args.to, quants=args.quant, repo_id=args.repo_id, private=args.private,
                            revision=args.revision, create_pr=args.create_pr, weights=args.weights)
    try:
        done = export_run(args.run, request)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(done["path"])
    for g in done["ggufs"]:
        print(f"  {g['file']}: {g['architecture']}, {g['file_type']}, {g['bytes'] / 1e6:.1f} MB, chat template "
              f"{'yes' if g['chat_template'] else 'no'}")
    if "hub" in done:
        print(f"  {done['hub']['pr_url'] or done['hub']['commit_url']}")
    if "ollama" in done:
        print(f"  cd {done['path']} && {done['ollama']['create']}")
    return 0
