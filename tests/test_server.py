"""The engine's registry (names added, aliased and removed; PEFT adapters freed with their last name), the
adapter cache (LRU eviction order, rows in use kept, a run's ids leaving together, full fine-tunes an LRU of
one) and the server's domain errors, on the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.generation.engine import EngineError, Prompt, Sampling
from distill.generation.hf import BASE_ADAPTER, HFEngine
from distill.generation.server import (
    AdapterCache,
    Busy,
    ModelServer,
    ModelUnavailable,
    Served,
    ServingError,
    load_engine,
)

BASE = "tiny-random"
GREEDY = Sampling(max_new_tokens=6, temperature=0.0)


@pytest.fixture(scope="module")
def adapter_dirs(tiny_model_path, tmp_path_factory) -> list[Path]:
    """Four LoRA adapters on the tiny model, each with its own random weights (so each answers differently)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from distill.models import load_model

    out = []
    for seed in range(4):
        torch.manual_seed(seed)
        model = get_peft_model(load_model(tiny_model_path), LoraConfig(
            r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False))
        path = tmp_path_factory.mktemp("adapters") / f"adapter-{seed}"
        model.save_pretrained(path)
        out.append(path)
    return out


@pytest.fixture(scope="module")
def full_dirs(tiny_model_path, tmp_path_factory) -> list[Path]:
    """Two full fine-tunes (the tiny model's weights saved as they are)."""
    from distill.models import load_model

    out = []
    for i in range(2):
        path = tmp_path_factory.mktemp("full") / f"full-{i}"
        load_model(tiny_model_path).save_pretrained(path)
        out.append(path)
    return out


def _answer(engine: HFEngine, name: str) -> str:
    return engine.generate([Prompt(model=name, text="Once upon a time", sampling=GREEDY)])[0].text


def _adapters_on(engine: HFEngine) -> set[str]:
    return set(getattr(engine.model_of(BASE), "peft_config", {}))


def test_the_registry_adds_aliases_and_removes_names(tiny_model_path, tiny_tokenizer, adapter_dirs) -> None:
    from peft import PeftModel

    from distill.models import load_model

    plain = load_model(tiny_model_path).eval()
    engine = HFEngine(tiny_tokenizer, {BASE: (plain, None)}, batch_size=4, tune_threads=False)
    engine.alias("also-base", BASE)
    assert engine.model_of("also-base") is plain and engine.serves("also-base")
    before = _answer(engine, "also-base")

    engine.add_adapter("run-1", adapter_dirs[0], onto=BASE)
    wrapper = engine.model_of(BASE)
    assert isinstance(wrapper, PeftModel) and wrapper is engine.model_of("run-1")
    # every name that served the plain model now answers through the wrapper, with the adapter off
    assert engine.targets[BASE] == (wrapper, BASE_ADAPTER) and engine.targets["also-base"] == (wrapper, BASE_ADAPTER)
    assert _answer(engine, "also-base") == before != _answer(engine, "run-1")

    engine.add_adapter("run-2", adapter_dirs[1], onto=BASE, adapter="run-2@7")
    engine.alias("run-2-again", "run-2")
    assert _adapters_on(engine) == {"run-1", "run-2@7"}
    engine.remove("run-2")
    assert _adapters_on(engine) == {"run-1", "run-2@7"}  # another name still answers with it
    engine.remove("run-2-again")
    assert _adapters_on(engine) == {"run-1"}
    engine.remove("also-base")  # an alias of the base: the base stays
    assert engine.models() == [BASE, "run-1"] and _answer(engine, BASE) == before
    engine.remove("never-served")  # nothing to do
    with pytest.raises(EngineError, match="unknown model 'run-2'"):
        _answer(engine, "run-2")


def _adapter(run: int, path: Path, version: float = 0.0) -> Served:
    return Served(id=f"run-{run}", base=BASE, kind="adapter", path=path, run_id=run, version=version)


def _base_of(run: int) -> Served:
    return Served(id=f"run-{run}:base", base=BASE, kind="base", run_id=run)


def test_the_cache_evicts_the_least_recently_used_idle_adapter(adapter_dirs) -> None:
    engine = load_engine(BASE, False, "cpu", 4)
    cache = AdapterCache(engine, BASE, "cpu", max_adapters=2)
    cache.ensure(_adapter(1, adapter_dirs[0]))
    cache.ensure(_base_of(1))
    cache.ensure(_adapter(2, adapter_dirs[1]))
    cache.ensure(_adapter(1, adapter_dirs[0]))  # used again: run-2 is now the least recent
    cache.ensure(_adapter(3, adapter_dirs[2]))
    assert list(cache.adapters) == ["run-1", "run-3"]
    assert cache.loaded() == ["run-1", "run-1:base", "run-3", BASE]
    assert _adapters_on(engine) == {"run-1@0", "run-3@0"}  # run-2's weights left memory

    cache.ensure(_adapter(4, adapter_dirs[3]), in_use={"run-1"})  # run-1 has rows generating: run-3 goes
    assert list(cache.adapters) == ["run-1", "run-4"]
    cache.ensure(_adapter(2, adapter_dirs[1]))  # run-1 is the least recent now: it goes, with its base alias
    assert list(cache.adapters) == ["run-4", "run-2"]
    assert cache.loaded() == ["run-2", "run-4", BASE]

    cache.ensure(_adapter(4, adapter_dirs[3], version=5.0))  # retrained: fresh weights under a new name
    assert _adapters_on(engine) == {"run-2@0", "run-4@5"} and list(cache.adapters) == ["run-2", "run-4"]
    cache.ensure(_base_of(4))
    cache.forget_run(4)  # deleted: all its ids leave
    assert cache.loaded() == ["run-2", BASE] and _adapters_on(engine) == {"run-2@0"}


def test_full_fine_tunes_are_an_lru_of_one(full_dirs) -> None:
    engine = load_engine(BASE, False, "cpu", 4)
    cache = AdapterCache(engine, BASE, "cpu", max_adapters=2)
    first = Served(id="run-7", base=BASE, kind="full", path=full_dirs[0], run_id=7)
    second = Served(id="run-8", base=BASE, kind="full", path=full_dirs[1], run_id=8)
    cache.ensure(first)
    cache.ensure(_base_of(7))
    assert cache.swaps_model([second]) and not cache.swaps_model([first, _base_of(7)])
    loaded_first = engine.model_of("run-7")
    assert loaded_first is not engine.model_of(BASE)
    cache.ensure(second)
    assert cache.loaded() == ["run-8", BASE] and list(cache.full) == ["run-8"]
    # the same answers: both are the tiny model's own weights
    assert _answer(engine, "run-8") == _answer(engine, BASE)


def test_the_server_generates_and_forgets_a_run(adapter_dirs) -> None:
    server = ModelServer(max_adapters=2, max_batch_rows=4, max_pending=8, device="cpu")
    try:
        prompts = [Prompt(model=m, text="Once upon a time", sampling=GREEDY) for m in ("run-1:base", "run-1")]
        gens = server.generate(prompts, [_base_of(1), _adapter(1, adapter_dirs[0])], timeout_s=120)
        plain = server.generate([Prompt(model=BASE, text="Once upon a time", sampling=GREEDY)],
                                [Served(id=BASE, base=BASE, kind="base")], timeout_s=120)
        assert gens[0].text == plain[0].text != gens[1].text and gens[1].new_tokens >= 1
        assert server.loaded() == {BASE: ["run-1", "run-1:base", BASE]}
        assert server.load() == {"pending_rows": 0, "active_rows": 0}
        server.forget_run(1)
        assert server.loaded() == {BASE: [BASE]}
    finally:
        server.close()


def test_the_servers_errors_are_domain_errors_that_name_the_problem(adapter_dirs) -> None:
    server = ModelServer(max_pending=1, device="cpu")
    try:
        two = [Prompt(model=BASE, text="Hi", sampling=GREEDY)] * 2
        with pytest.raises(Busy, match=r"busy \(0 rows waiting\)"):
            server.generate(two, [Served(id=BASE, base=BASE, kind="base")])
        with pytest.raises(ServingError, match="one request serves one base model, not 2"):
            server.generate(two, [Served(id=BASE, base=BASE, kind="base"),
                                  Served(id="other", base="other", kind="base")])
        with pytest.raises(ModelUnavailable, match="neither a local folder nor a hub id"):
            server.server("no such model")
    finally:
        server.close()


def test_the_api_maps_each_serving_error_to_its_status() -> None:
    from backend.errors import as_api_error
    from distill.generation.server import ModelNotFound, model_not_found

    cases = [(model_not_found("run-9"), 404), (Busy("busy"), 429), (ModelUnavailable("gone"), 503),
             (ServingError("two bases"), 400)]
    for error, status in cases:
        api = as_api_error(error)
        assert (api.status_code, api.detail) == (status, str(error))
    assert as_api_error(ModelNotFound("The model 'x' does not exist")).detail == "The model 'x' does not exist"
    assert getattr(as_api_error(Busy("busy")), "retry_after_s", None) == 1
