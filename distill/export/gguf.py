"""GGUF files from a run's model, with llama.cpp's own converter, and what was written read back.

The converter (``convert_hf_to_gguf.py`` with its ``conversion`` package and its own ``gguf-py``, which is newer
than the ``gguf`` release on PyPI of the same version number) is taken once from the source distribution of a
pinned ``llama-cpp-python`` on PyPI and kept in the virtual environment (``make setup`` does it:
``python -m distill.export.gguf``). It writes ``f16``, ``bf16``, ``f32`` and ``q8_0``; the K-quants go through
llama.cpp's quantizer (``llama_cpp.llama_model_quantize``) where llama-cpp-python is built (an optional extra).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill.errors import UserError

LLAMA_CPP_PYTHON = "0.3.36"  # the pinned source distribution the converter comes from
CONVERTER = "convert_hf_to_gguf.py"
# What the converter needs of the vendored llama.cpp tree (about 2 MB of the 76 MB distribution).
CONVERTER_PARTS = (CONVERTER, "conversion/", "gguf-py/", "LICENSE")
CONVERTER_TYPES = ("f16", "bf16", "f32", "q8_0")
# K-quants and the legacy 4/5-bit types: names as llama.cpp's quantize tool spells them -> llama_ftype names.
QUANTIZER_TYPES = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
                   "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S", "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
                   "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0"}
# Every --quant value, in the order the CLI lists them: the converter's first, then the quantizer's.
QUANTS = (*CONVERTER_TYPES, *QUANTIZER_TYPES)
CONVERT_TIMEOUT_S = 3600


class GGUFError(UserError, RuntimeError):
    """A GGUF conversion that cannot be done; the message is one line."""


def converter_dir() -> Path:
    """Where the converter lives: ``DISTILL_LLAMA_CPP``, else ``llama.cpp/`` inside the virtual environment."""
    return Path(os.environ.get("DISTILL_LLAMA_CPP") or Path(sys.prefix) / "llama.cpp")


def check_quants(quants: list[str]) -> list[str]:
    """The quantizations, lower-cased and known, the K-quants only where llama.cpp's quantizer is built."""
    known = list(QUANTS)
    wanted = [q.lower() for q in quants] or ["f16"]
    unknown = [q for q in wanted if q not in known]
    if unknown:
        raise GGUFError(f"unknown quantization {', '.join(unknown)}: use one of {', '.join(known)}")
    if any(q in QUANTIZER_TYPES for q in wanted) and not quantizer_available():
        raise GGUFError(f"{', '.join(q for q in wanted if q in QUANTIZER_TYPES)} needs llama.cpp's quantizer: "
                        f"install llama-cpp-python (pip install 'distill-studio[llamacpp]'); f16 and q8_0 need only "
                        f"the converter")
    return list(dict.fromkeys(wanted))


def quantizer_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or built without a loadable library
        return False
    return True


def check_converter() -> Path:
    script = converter_dir() / CONVERTER
    if not script.is_file():
        raise GGUFError(f"llama.cpp's converter is not installed at {script}: run `make setup` or "
                        f"`python -m distill.export.gguf` (takes it once from llama-cpp-python=={LLAMA_CPP_PYTHON} "
                        "on PyPI)")
    return script


def fetch_converter(target: Path | None = None) -> Path:
    """Download the pinned source distribution once and keep only the converter's parts in ``target``."""
    target = target or converter_dir()
    if (target / CONVERTER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".llama.cpp.") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", tmp], check=True)
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        staged = Path(tmp) / "llama.cpp"
        prefix = f"{sdist.name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix) and m.isfile()
                       and m.name[len(prefix):].startswith(CONVERTER_PARTS)]
            for m in members:
                m.name = m.name[len(prefix):]
            tar.extractall(staged, members=members, filter="data")
        staged.rename(target)  # in place only once complete
    return target


def convert(model_dir: Path, out: Path, outtype: str) -> Path:
    """``model_dir`` (a transformers folder) to ``out`` with llama.cpp's converter."""
    script = check_converter()
    cmd = [sys.executable, str(script), str(model_dir), "--outfile", str(out), "--outtype", outtype]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise GGUFError(f"llama.cpp's converter took over {CONVERT_TIMEOUT_S} s on {model_dir}") from None
    if done.returncode != 0 or not out.is_file():
        last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "no output")
        raise GGUFError(f"llama.cpp's converter failed on {model_dir}: {last.strip()}")
    return out


def quantize(source: Path, out: Path, quant: str) -> Path:
    """A K-quant (or legacy 4/5-bit) file from an f16 GGUF, with llama.cpp's quantizer."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTIZER_TYPES[quant])
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params) != 0 or not out.is_file():
        raise GGUFError(f"llama.cpp's quantizer failed to write {quant} from {source}")
    return out


def describe(path: Path) -> dict[str, Any]:
    """What a GGUF file says it is, read back with ``gguf``'s reader: architecture, file type, chat template."""
    from gguf import GGUFReader, LlamaFileType

    reader = GGUFReader(path)

    def value(key: str) -> Any:
        field = reader.get_field(key)
        return field.contents() if field is not None else None

    file_type = value("general.file_type")
    return {"file": path.name, "bytes": path.stat().st_size, "architecture": value("general.architecture"),
            "file_type": LlamaFileType(file_type).name if file_type is not None else None,
            "chat_template": value("tokenizer.chat_template"), "tensors": len(reader.tensors),
            "context_length": value(f"{value('general.architecture')}.context_length")}


# The file type each requested quantization must read back as (LlamaFileType names).
EXPECTED_FILE_TYPE = {"f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "f32": "ALL_F32", "q8_0": "MOSTLY_Q8_0",
                      "q4_k_m": "MOSTLY_Q4_K_M", "q5_k_m": "MOSTLY_Q5_K_M", "q4_k_s": "MOSTLY_Q4_K_S",
                      "q6_k": "MOSTLY_Q6_K", "q4_0": "MOSTLY_Q4_0", "q5_0": "MOSTLY_Q5_0"}


def write_ggufs(model_dir: Path, folder: Path, stem: str, quants: list[str],
                on_quant: Callable[[str, str], None] = lambda quant, kind: None) -> list[dict[str, Any]]:
    """One file per quantization in ``folder`` (``STEM-QUANT.gguf``), each read back and checked; ``on_quant``
    (quant, "converting" or "quantizing") before each."""
    made = []
    f16 = None  # the f16 file the quantizer starts from: the one asked for, else a hidden one removed at the end
    hidden = folder / f".{stem}-f16.tmp.gguf"
    for quant in quants:
        out = folder / f"{stem}-{quant}.gguf"
        on_quant(quant, "converting" if quant in CONVERTER_TYPES else "quantizing")
        if quant in CONVERTER_TYPES:
            convert(model_dir, out, quant)
            f16 = out if quant == "f16" else f16
        else:
            f16 = f16 or convert(model_dir, hidden, "f16")
            quantize(f16, out, quant)
        info = describe(out)
        if info["file_type"] != EXPECTED_FILE_TYPE[quant] or not info["architecture"]:
            raise GGUFError(f"{out.name} reads back as {info['file_type']} ({info['architecture']}), not {quant}")
        made.append({"quant": quant, **info})
    hidden.unlink(missing_ok=True)
    return made


def main() -> int:
    """``python -m distill.export.gguf``: install the converter (``make setup`` calls it)."""
    try:
        print(f"llama.cpp's converter: {fetch_converter() / CONVERTER}")
    except (subprocess.CalledProcessError, OSError, StopIteration) as e:
        print(f"warning: llama.cpp's converter was not installed ({e}); GGUF export needs it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
