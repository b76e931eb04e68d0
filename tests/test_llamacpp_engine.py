"""The llamacpp engine (GGUF files through llama.cpp) against the hf engine on the embedded model: the same prompt
text and ids, the same greedy tokens from the f16 file, most of them from q8_0, batched as single-stream; seeded
sampling, stop strings and token limits; K-quants written by llama.cpp's quantizer and read back; bad inputs as one
line. Skipped where llama-cpp-python is not built (the optional extra ``llamacpp``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from distill.export.gguf import GGUFError, check_quants, converter_dir, write_ggufs
from distill.generation.engine import EngineError, Prompt, Sampling

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama-cpp-python is not installed: pip install '.[llamacpp]' (the optional extra "
                              "llamacpp; build flags in the README, \"Export a model\")"),
    pytest.mark.skipif(not (converter_dir() / "convert_hf_to_gguf.py").is_file(),
                       reason="llama.cpp's converter is not installed: make setup installs it"),
]

MODEL = "smollm2-135m"
TOKENS = 16
# Measured on the six held-out prompts below: q8_0 gave the hf engine's first 16 greedy tokens on 3 (the other three
# part after 1, 1 and 11 tokens, on near-ties: "1 kilogram" / "1000", "1. The farmer" / "15 * 7").
Q8_0_AGREE_AT_LEAST = 3


@pytest.fixture(scope="module")
def embedded() -> tuple[str, object]:
    from distill.data.prepare import ensure_chat_template
    from distill.models import ensure_local_model, load_tokenizer

    path = ensure_local_model(MODEL)
    tok = load_tokenizer(path)
    ensure_chat_template(tok)
    return path, tok


@pytest.fixture(scope="module")
def ggufs(embedded, tmp_path_factory) -> dict[str, Path]:
    """f16 and q8_0 (the converter) and q4_k_m, q5_k_m (the quantizer, from that f16), each read back."""
    folder = tmp_path_factory.mktemp("gguf")
    made = write_ggufs(Path(embedded[0]), folder, "smol", ["f16", "q8_0", "q4_k_m", "q5_k_m"])
    return {m["quant"]: folder / m["file"] for m in made} | {"_made": made}


@pytest.fixture(scope="module")
def chats() -> list[list[dict[str, str]]]:
    from distill.data.builtin import SYSTEM_PROMPT
    from distill.data.sources import load_examples

    held = load_examples("builtin:reasoning", 6, split="eval")[0]
    return [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": e.prompt}] for e in held]


@pytest.fixture(scope="module")
def hf_answers(embedded, chats) -> list:
    from distill.generation.hf import HFEngine
    from distill.models import load_model

    path, tok = embedded
    hf = HFEngine(tok, {"base": (load_model(path).eval(), None)}, batch_size=len(chats))
    return hf.generate(_prompts(chats, Sampling(max_new_tokens=TOKENS)))


def _prompts(chats, sampling: Sampling, model: str = "base") -> list[Prompt]:
    return [Prompt(model=model, messages=c, sampling=sampling) for c in chats]


def _engine(path: Path, tok=None, batch_size: int = 4):
    from distill.generation.llamacpp import LlamaCppEngine

    return LlamaCppEngine({"base": path}, tok, batch_size=batch_size, n_threads=2)


pytest_slow = pytest.mark.slow  # the embedded model, converted three times: ~1-2 min here


@pytest_slow
def test_f16_answers_like_the_hf_engine_batched_and_single(embedded, ggufs, chats, hf_answers):
    from distill.generation.hf import render

    _, tok = embedded
    batched = _engine(ggufs["f16"], tok, batch_size=4)  # 6 prompts through 4 slots: rows join as others finish
    gm = batched.targets["base"]
    for c in chats:  # the same prompt text and the same ids as transformers'
        text = render(tok, Prompt(model="base", messages=c))
        assert gm.tokenize(text) == tok(text, add_special_tokens=False)["input_ids"]
    got = batched.generate(_prompts(chats, Sampling(max_new_tokens=TOKENS)))
    assert [g.text for g in got] == [g.text for g in hf_answers]
    assert [(g.new_tokens, g.prompt_tokens, g.finish_reason) for g in got] == [
        (g.new_tokens, g.prompt_tokens, g.finish_reason) for g in hf_answers]
    single = _engine(ggufs["f16"], None, batch_size=1)  # no tokenizer: the GGUF's own chat template
    assert [g.text for g in single.generate(_prompts(chats, Sampling(max_new_tokens=TOKENS)))] == [
        g.text for g in hf_answers]
    batched.close()
    single.close()


@pytest_slow
def test_q8_0_agrees_on_most_prompts(embedded, ggufs, chats, hf_answers):
    engine = _engine(ggufs["q8_0"], embedded[1])
    got = engine.generate(_prompts(chats, Sampling(max_new_tokens=TOKENS)))
    engine.close()
    assert sum(g.text == h.text for g, h in zip(got, hf_answers, strict=True)) >= Q8_0_AGREE_AT_LEAST


@pytest_slow
def test_seeded_sampling_stop_strings_and_limits(embedded, ggufs, chats, hf_answers):
    engine = _engine(ggufs["f16"], embedded[1])
    seeded = Sampling(max_new_tokens=TOKENS, temperature=0.9, top_p=0.95, seed=7)
    alone = engine.generate([Prompt(model="base", messages=chats[0], sampling=seeded)])[0]
    # the same seed in a batch with other rows gives the same text; other seeds give other texts
    crowd = engine.generate([Prompt(model="base", messages=chats[0], sampling=seeded)]
                            + _prompts(chats[1:4], Sampling(max_new_tokens=TOKENS, temperature=0.9, seed=1)))
    assert crowd[0].text == alone.text and crowd[0].new_tokens == alone.new_tokens
    others = {engine.generate([Prompt(model="base", messages=chats[0], sampling=Sampling(
        max_new_tokens=TOKENS, temperature=0.9, top_p=0.95, seed=s))])[0].text for s in range(8, 12)}
    assert len(others | {alone.text}) >= 3
    # a stop string from the greedy answer cuts it there
    greedy = hf_answers[0].text
    word = greedy.split()[2]
    cut = engine.generate([Prompt(model="base", messages=chats[0],
                                  sampling=Sampling(max_new_tokens=TOKENS, stop=(word,)))])[0]
    assert cut.finish_reason == "stop" and cut.text == greedy[:greedy.index(word)].strip()
    short = engine.generate([Prompt(model="base", messages=chats[0], sampling=Sampling(max_new_tokens=3))])[0]
    assert (short.new_tokens, short.finish_reason) == (3, "length") and greedy.startswith(short.text)
    engine.close()


@pytest_slow
def test_k_quants_are_written_read_back_and_answer(embedded, ggufs, chats):
    made = {m["quant"]: m for m in ggufs["_made"]}
    assert [(q, made[q]["architecture"], made[q]["file_type"]) for q in ("q4_k_m", "q5_k_m")] == [
        ("q4_k_m", "llama", "MOSTLY_Q4_K_M"), ("q5_k_m", "llama", "MOSTLY_Q5_K_M")]
    assert made["q4_k_m"]["bytes"] < made["q5_k_m"]["bytes"] < made["q8_0"]["bytes"] < made["f16"]["bytes"]
    assert not list(ggufs["f16"].parent.glob(".*"))  # the K-quants came from the f16 asked for, nothing hidden left
    engine = _engine(ggufs["q4_k_m"], embedded[1])
    got = engine.generate(_prompts(chats[:2], Sampling(max_new_tokens=8)))
    engine.close()
    assert all(g.new_tokens > 0 and g.text for g in got)


@pytest_slow
def test_a_prompt_longer_than_a_slot_fails_alone(embedded, ggufs, chats):
    from distill.generation.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine({"base": ggufs["f16"]}, embedded[1], batch_size=2, ctx_per_row=64, n_threads=2)
    long_chat = [{"role": "user", "content": "count: " + " ".join(str(i) for i in range(100))}]
    prompts = [Prompt(model="base", messages=m, sampling=Sampling(max_new_tokens=4))
               for m in (long_chat, [{"role": "user", "content": "Hi"}])]
    seen = {}
    got = engine.generate(prompts, on_result=lambda i, g: seen.setdefault(i, g))
    assert got[0].finish_reason == "error" and "llama.cpp's context holds 64 per row" in got[0].error
    assert got[1].new_tokens == 4 and sorted(seen) == [0, 1]
    with pytest.raises(EngineError, match="context holds 64 per row"):
        engine.generate(prompts)
    engine.close()


def test_bad_gguf_paths_and_quantizations_are_one_line(tmp_path):
    from distill.generation.llamacpp import LlamaCppEngine

    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_text("not a model")
    cases = [(tmp_path / "missing.gguf", "no GGUF file at"), (not_gguf, "is not a GGUF file")]
    for path, needle in cases:
        with pytest.raises(EngineError) as err:
            LlamaCppEngine({"base": path})
        assert needle in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GGUFError) as err:
        check_quants(["q3_x"])
    assert str(err.value).startswith("unknown quantization q3_x: use one of f16, bf16, f32, q8_0, q4_k_m, q5_k_m")
    assert check_quants(["Q4_K_M", "q5_k_m"]) == ["q4_k_m", "q5_k_m"]  # the quantizer is built here


@pytest_slow
def test_unknown_model_name_is_one_line(ggufs, chats):
    engine = _engine(ggufs["q8_0"], batch_size=1)
    with pytest.raises(EngineError) as err:
        engine.generate(_prompts(chats[:1], Sampling(max_new_tokens=2), model="sft"))
    engine.close()
    assert str(err.value) == "unknown model 'sft'; this engine serves base"


def test_engine_for_run_converts_once_into_the_cache(tiny_model_path, tiny_tokenizer, tmp_path, monkeypatch):
    from distill.config import build_config
    from distill.generation.llamacpp import engine_for_run, gguf_cache_dir

    monkeypatch.setenv("DISTILL_MODEL_CACHE", str(tmp_path / "cache"))
    config = build_config({"model": "tiny-random", "engine": "llamacpp", "eval_batch_size": 64,
                           "max_new_tokens": 12, "output_dir": str(tmp_path / "run")})
    engine = engine_for_run(config, tiny_model_path, tiny_tokenizer, tiny_model_path)
    files = sorted(p.name for p in gguf_cache_dir().glob("*.gguf"))
    assert len(files) == 1 and files[0].startswith("tiny-random-") and files[0].endswith("-f16.gguf")
    assert engine.models() == ["base", "sft"] and engine.targets["base"] is engine.targets["sft"]  # one load
    assert engine.targets["base"].slots == 16  # eval_batch_size 64 capped
    got = engine.generate([Prompt(model=m, messages=[{"role": "user", "content": "2+2?"}],
                                  sampling=Sampling(max_new_tokens=5)) for m in ("base", "sft")])
    assert [g.new_tokens for g in got] == [5, 5] and got[0].text == got[1].text
    engine.close()
    mtime = (gguf_cache_dir() / files[0]).stat().st_mtime_ns
    engine_for_run(config, tiny_model_path, tiny_tokenizer, None).close()
    assert (gguf_cache_dir() / files[0]).stat().st_mtime_ns == mtime  # converted once


@pytest_slow
def test_a_run_evaluates_through_the_llamacpp_engine_as_through_hf(embedded, distill_home):
    """``--engine llamacpp`` in a run: the base and SFT models (here the embedded model as both) answer the held-out
    problems through their GGUFs with the hf engine's greedy text."""
    import json

    from distill.cli import main

    answers = {}
    for engine in ("hf", "llamacpp"):
        out = distill_home / engine
        rc = main(["--mode", "evaluate", "--model", MODEL, "--sft_model_path", str(embedded[0]), "--engine", engine,
                   "--eval_samples", "3", "--no-general_prompts", "--max_new_tokens", str(TOKENS),
                   "--output_dir", str(out)])
        assert rc == 0
        records = json.loads((out / "evaluation_results.json").read_text())["benchmark_samples"]["heldout"]
        answers[engine] = [(r["base"][0]["text"], r["sft"][0]["text"]) for r in records]
    assert len(answers["hf"]) == 3 and all(base and sft for base, sft in answers["hf"])
    assert answers["llamacpp"] == answers["hf"]
