"""Export of a trained tiny run: the model card read back, GGUF f16 / q8_0 written by llama.cpp's converter, read
back and answering like the merged model, the Ollama Modelfile, the Hub upload against a stand-in Hub, and every
bad input as one line with nothing left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from distill.config import build_config
from distill.data.builtin import SYSTEM_PROMPT
from distill.evaluation.summary import format_pass1
from distill.export.card import EMBEDDED_HUB_ID, hub_model_id
from distill.export.gguf import GGUFError, converter_dir
from distill.export.hub import HubExportError
from distill.export.run import ExportError, ExportRequest, export_run, list_exports
from distill.pipeline import run_pipeline
from tests.conftest import TINY_RUN

pytestmark = pytest.mark.skipif(not (converter_dir() / "convert_hf_to_gguf.py").is_file(),
                                reason="llama.cpp's converter is not installed: make setup installs it")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run_tiny"
    run_pipeline(build_config({**TINY_RUN, "output_dir": str(out)}))
    return out


@pytest.fixture()
def run_copy(trained, tmp_path) -> Path:
    """A copy to export from, so that one test's exports do not show in another's."""
    return Path(shutil.copytree(trained, tmp_path / trained.name, ignore=shutil.ignore_patterns("checkpoints")))


def test_cards_name_the_hub_base_and_carry_the_evaluation(trained):
    from huggingface_hub import ModelCard

    evaluation = json.loads((trained / "evaluation_results.json").read_text())
    held = evaluation["benchmarks"]["heldout"]
    for folder, library, relation in (("final_model", "peft", "adapter"), ("merged_model", "transformers", "finetune")):
        card = ModelCard.load(trained / folder / "README.md")
        assert (card.data.library_name, card.data.base_model_relation) == (library, relation)
        assert card.data.base_model is None  # tiny-random is not on the Hub: never a local path
        assert [(r.dataset_type, r.metric_type, r.metric_value) for r in card.data.eval_results] == [
            ("heldout", "pass@1", held["sft"]["pass@1"])]
        assert format_pass1(held["base"]) in card.text and "exact McNemar" in card.text
        assert "| train_rows |" in card.text and "| learning_rate |" in card.text
    assert hub_model_id("smollm2-135m") == EMBEDDED_HUB_ID
    assert hub_model_id("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert hub_model_id(str(trained / "merged_model")) is None


def _greedy(model, tokenizer, prompts: list[str], n: int) -> list[list[int]]:
    out = []
    for p in prompts:
        ids = tokenizer(p, return_tensors="pt")
        gen = model.generate(**ids, max_new_tokens=n, do_sample=False)
        out.append(gen[0, ids["input_ids"].shape[1]:].tolist())
    return out


@pytest.mark.slow  # three models asked the same prompts: ~30 s here
def test_gguf_f16_and_q8_0_read_back_and_answer_like_the_merged_model(run_copy):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.data.sources import load_examples

    done = export_run(run_copy, ExportRequest(to="gguf", quants=["f16", "Q8_0"]))
    folder = Path(done["path"])
    assert [(g["quant"], g["architecture"], g["file_type"]) for g in done["ggufs"]] == [
        ("f16", "llama", "MOSTLY_F16"), ("q8_0", "llama", "MOSTLY_Q8_0")]
    assert all("<|im_start|>" in g["chat_template"] for g in done["ggufs"])
    assert sorted(done["files"]) == ["run_tiny-f16.gguf", "run_tiny-q8_0.gguf"]
    assert list_exports(run_copy)[0]["name"] == done["name"]
    tok = AutoTokenizer.from_pretrained(run_copy / "merged_model")
    held = load_examples("builtin:reasoning", 6, split="eval")[0]
    prompts = [tok.apply_chat_template([{"role": "system", "content": SYSTEM_PROMPT},
                                        {"role": "user", "content": ex.prompt}], add_generation_prompt=True,
                                       tokenize=False) for ex in held]
    reference = _greedy(AutoModelForCausalLM.from_pretrained(run_copy / "merged_model", dtype=torch.float32),
                        tok, prompts, 16)
    agree = {}
    for g in done["ggufs"]:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=g["file"], dtype=torch.float32)
        agree[g["quant"]] = sum(r == a for r, a in zip(reference, _greedy(model, tok, prompts, 16), strict=True))
    assert agree["f16"] == len(prompts)
    assert agree["q8_0"] >= len(prompts) - 1


def test_ollama_modelfile_beside_the_gguf(run_copy):
    done = export_run(run_copy, ExportRequest(to="ollama", quants=["q8_0"]))
    text = (Path(done["path"]) / "Modelfile").read_text()
    assert text.splitlines()[0] == "FROM ./run_tiny-q8_0.gguf" and (Path(done["path"]) / "run_tiny-q8_0.gguf").is_file()
    assert f'SYSTEM """{SYSTEM_PROMPT}"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER num_ctx 8192" in text
    assert "<|im_start|>assistant\n{{ if .Thinking }}<think>\n{{ .Thinking }}\n</think>\n\n" in text


def _nothing_left(run: Path) -> bool:
    exports = run / "exports"
    return not exports.exists() or not any(exports.iterdir())


@pytest.mark.parametrize("case, needle", [
    ("not_a_run", "not a run folder"), ("unfinished", "has not finished"), ("benchmark_job", "benchmark job"),
    ("unknown_quant", "unknown quantization q3_x"), ("k_quant", "needs llama.cpp's quantizer"),
    ("no_token", "no Hugging Face token"), ("bad_repo", "--repo-id must be owner/name"),
])
def test_bad_inputs_are_one_line_and_leave_nothing(run_copy, monkeypatch, case, needle):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    request = ExportRequest(to="gguf")
    if case == "not_a_run":
        (run_copy / "config.json").unlink()
    elif case == "unfinished":
        (run_copy / "timings.json").unlink()
    elif case == "benchmark_job":
        cfg = json.loads((run_copy / "config.json").read_text())
        (run_copy / "config.json").write_text(json.dumps({**cfg, "mode": "evaluate", "sft_model_path": "x"}))
    elif case in ("unknown_quant", "k_quant"):
        request.quants = ["q3_x" if case == "unknown_quant" else "q4_k_m"]
    elif case in ("no_token", "bad_repo"):
        request = ExportRequest(to="hub", repo_id="me/model" if case == "no_token" else "model")
        if case == "bad_repo":
            monkeypatch.setenv("HF_TOKEN", "hf_test")
    if case == "k_quant":
        pytest.importorskip("distill.export.gguf").quantizer_available() and pytest.skip("llama-cpp-python is built")
    with pytest.raises((ExportError, GGUFError, HubExportError)) as err:
        export_run(run_copy, request)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert _nothing_left(run_copy)


def test_cli_export_error_is_one_line(run_copy, capsys):
    from distill.cli import main

    (run_copy / "timings.json").unlink()
    assert main(["export", str(run_copy), "--to", "gguf"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run_tiny has not finished") and "\n" not in err
