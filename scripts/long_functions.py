"""List the functions longer than N lines (default 60) under distill/, backend/ and worker/, longest first.

Usage: python scripts/long_functions.py [--max 60] [paths ...]
A function's length counts from its ``def`` line (decorators excluded) to its last line, docstring and comments
included; a nested function counts inside its parent and again on its own.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

DEFAULT_ROOTS = ("distill", "backend", "worker")


def function_lengths(path: Path) -> list[tuple[int, str, int]]:
    """(length in lines, qualified name, first line) of every function in one file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((child.end_lineno - child.lineno + 1, name, child.lineno))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def long_functions(roots: list[Path], limit: int) -> list[tuple[int, str]]:
    """(length, "file:line name") of every function longer than ``limit`` lines, longest first; tests skipped."""
    rows = []
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for path in files:
            if "tests" in path.parts:
                continue
            for length, name, line in function_lengths(path):
                if length > limit:
                    rows.append((length, f"{path}:{line} {name}"))
    return sorted(rows, key=lambda row: (-row[0], row[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=60, help="list functions longer than this many lines")
    parser.add_argument("paths", nargs="*", default=list(DEFAULT_ROOTS), help="folders or files to scan")
    args = parser.parse_args(argv)
    rows = long_functions([Path(p) for p in args.paths], args.max)
    for length, where in rows:
        print(f"{length:5d}  {where}")
    print(f"{len(rows)} function(s) longer than {args.max} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
