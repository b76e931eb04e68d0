"""scripts/long_functions.py: functions (methods and nested ones too) longer than the limit, longest first."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "long_functions.py"


def _script():
    spec = importlib.util.spec_from_file_location("long_functions", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _function(name: str, body_lines: int, indent: str = "") -> str:
    return f"{indent}def {name}():\n" + "".join(f"{indent}    x = {i}\n" for i in range(body_lines))


def test_lists_long_functions_methods_and_nested_ones_longest_first(tmp_path, capsys):
    source = (_function("short", 3) + _function("long", 70)
              + "class Box:\n" + _function("method", 80, "    ")
              + "def outer():\n" + _function("inner", 65, "    ") + "    return inner\n")
    (tmp_path / "mod.py").write_text(source)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(_function("test_long", 90))  # tests are skipped
    assert _script().main(["--max", "60", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in lines[:-1]] == ["Box.method", "long", "outer", "outer.inner"]
    assert lines[0].split()[0] == "81" and lines[1].split()[0] == "71"
    assert lines[-1] == "4 function(s) longer than 60 lines"
