"""``/v1`` spoken by the official ``openai`` client: model list, chat and text completions, streaming,
n, seed, stop, usage, finish reasons, errors in OpenAI's shape, the bearer token; 50 clients at once
(answered, or refused with 429 and Retry-After); a deleted run is gone from memory; the thought apart in
``reasoning_content``; and the ``openai`` engine evaluating, and a finished run teaching, through this service's own
``/v1``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from backend.tables import Run, utcnow
from backend.store import Store
from distill.config import build_config
from distill.pipeline import run_pipeline
from svc_helpers import LiveServer, install_adapter, make_settings, migrate, wait_for

TOKEN = "v1-token"


def _finished_run(settings, adapter: Path | None = None, full: bool = False) -> int:
    store = Store(settings, role="api")
    with store.sessions() as s:
        run = Run(name="served", status="succeeded", config={"mode": "all", "model": "tiny-random",
                                                             "dataset": "builtin:reasoning"},
                  created_at=utcnow(), progress=1.0, cancel_requested=False, attempts=1, task_id="t")
        s.add(run)
        s.flush()
        run.output_dir = str(settings.runs_dir / f"run_{run.id}")
        s.commit()
        rid = run.id
    if adapter is not None:
        install_adapter(settings.home, adapter, f"runs/run_{rid}/final_model")
    if full:
        from distill.models import ensure_local_model, load_model

        load_model(ensure_local_model("tiny-random")).save_pretrained(settings.runs_dir / f"run_{rid}" / "final_model")
    return rid


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_adapter_source) -> Iterator[tuple[LiveServer, int, int]]:
    settings = make_settings(tmp_path_factory.mktemp("v1") / "home", api_token=TOKEN, max_pending_rows=16,
                             max_batch_rows=8)
    settings.home.mkdir()
    migrate(settings)
    lora = _finished_run(settings, tiny_adapter_source)
    full = _finished_run(settings, full=True)
    with LiveServer(settings) as api:
        yield api, lora, full


@pytest.fixture()
def client(served) -> openai.OpenAI:
    api, _, _ = served
    return openai.OpenAI(base_url=api.url.removesuffix("/api/v1") + "/v1", api_key=TOKEN, max_retries=0)


def _chat(client: openai.OpenAI, model: str, **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "What is 2 + 3?"}], **kw)


def test_models_lists_every_run_and_its_base(client, served) -> None:
    _, lora, full = served
    ids = {m.id for m in client.models.list().data}
    assert {f"run-{lora}", f"run-{lora}:base", f"run-{full}", f"run-{full}:base", "tiny-random"} <= ids


def test_chat_completion_with_n_seed_usage_and_finish_reasons(client, served) -> None:
    _, lora, _ = served
    r = _chat(client, f"run-{lora}", n=3, max_tokens=6, temperature=0.9, seed=11)
    assert r.object == "chat.completion" and r.model == f"run-{lora}" and len(r.choices) == 3
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.message.role == "assistant" and c.finish_reason in ("stop", "length") for c in r.choices)
    assert r.usage.completion_tokens <= 18 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens > 5
    again = _chat(client, f"run-{lora}", n=3, max_tokens=6, temperature=0.9, seed=11)
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]  # seeded
    assert len({c.message.content for c in r.choices}) > 1  # n samples differ
    long = _chat(client, f"run-{lora}", max_tokens=4, temperature=0)
    assert long.usage.completion_tokens <= 4
    assert long.choices[0].finish_reason == ("length" if long.usage.completion_tokens == 4 else "stop")


def test_base_and_sft_share_one_set_of_weights(client, served) -> None:
    api, lora, _ = served
    sft = _chat(client, f"run-{lora}", max_tokens=8, temperature=0).choices[0].message.content
    base = _chat(client, f"run-{lora}:base", max_tokens=8, temperature=0).choices[0].message.content
    plain = _chat(client, "tiny-random", max_tokens=8, temperature=0).choices[0].message.content
    assert base == plain != sft  # the base is the same weights with the adapter off
    loaded = api.app.state.services.serving.loaded()
    assert list(loaded) == ["tiny-random"] and f"run-{lora}" in loaded["tiny-random"]


def test_streaming_is_chunked_as_openai_does_and_matches_the_plain_answer(client, served) -> None:
    _, lora, _ = served
    plain = _chat(client, f"run-{lora}", max_tokens=8, temperature=0)
    chunks = list(_chat(client, f"run-{lora}", max_tokens=8, temperature=0, stream=True,
                        stream_options={"include_usage": True}))
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == plain.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_a_request_joins_the_batch_generating_now_instead_of_waiting_for_it(client, served) -> None:
    api, lora, _ = served
    events: list[tuple[str, float]] = []
    started = threading.Event()

    def long_answer() -> None:
        chunks = 0
        for chunk in _chat(client, f"run-{lora}", max_tokens=600, temperature=0, stream=True,
                           stream_options={"include_usage": True}):
            chunks += 1
            if chunks == 3:
                started.set()
            if not chunk.choices:
                events.append(("long done", chunk.usage.completion_tokens))

    t = threading.Thread(target=long_answer)
    t.start()
    assert started.wait(60)
    short = _chat(client, f"run-{lora}:base", max_tokens=3, temperature=0)
    events.append(("short done", short.usage.completion_tokens))
    t.join(120)
    # The short request was answered while the long one still generated (a static batch would hold it back
    # until the long one ended), and the long one ran to its limit.
    assert [e[0] for e in events] == ["short done", "long done"], events
    assert events[1][1] == 600 and events[0][1] <= 3


def test_raw_completions_stop_and_the_done_marker(client, served) -> None:
    api, lora, full = served
    r = client.completions.create(model=f"run-{full}", prompt="Once upon a time", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text and r.usage.completion_tokens <= 8
    first = r.choices[0].text[1:3]
    cut = client.completions.create(model=f"run-{full}", prompt="Once upon a time", max_tokens=8, temperature=0,
                                    stop=[first])
    assert cut.choices[0].finish_reason == "stop" and first not in cut.choices[0].text
    with httpx.stream("POST", f"{api.url.removesuffix('/api/v1')}/v1/completions", timeout=60,
                      headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"model": f"run-{lora}", "prompt": "Hi", "max_tokens": 3, "stream": True}) as s:
        data = [line.removeprefix("data: ") for line in s.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]" and all(json.loads(d)["object"] == "text_completion" for d in data[:-1])


def test_errors_are_in_openais_shape(client, served) -> None:
    api, _, _ = served
    with pytest.raises(openai.NotFoundError) as e:
        _chat(client, "run-999", max_tokens=2)
    assert e.value.status_code == 404 and "run-999" in e.value.message
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as e:
        _chat(client, "tiny-random", n=0)
    assert e.value.body["param"] == "n"
    wrong = openai.OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        wrong.models.list()
    assert e.value.body["code"] == "invalid_api_key"
    assert httpx.get(f"{api.url.removesuffix('/api/v1')}/v1/models").status_code == 401  # no token at all


def _post_chat(api, model: str, max_tokens: int) -> httpx.Response:
    return httpx.post(f"{api.url.removesuffix('/api/v1')}/v1/chat/completions", timeout=300,
                      headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": max_tokens})


def test_fifty_clients_at_once_are_answered_or_told_to_retry(client, served) -> None:
    api, lora, _ = served
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def one() -> None:
        r = _post_chat(api, f"run-{lora}", 16)
        with lock:
            results.append((r.status_code, r.headers.get("retry-after")))

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [c for c, _ in results]
    assert len(codes) == 50 and set(codes) <= {200, 429} and codes.count(200) >= 16, codes
    assert all(after == "1" for c, after in results if c == 429)
    assert _chat(client, f"run-{lora}", max_tokens=2).choices  # still serving
    assert httpx.get(f"{api.url}/health").json()["database"] == "ok"


def test_a_full_queue_refuses_with_429_and_retry_after(client, served) -> None:
    api, lora, _ = served
    server = api.app.state.services.serving.servers["tiny-random"]
    server.max_pending, before = 1, server.max_pending
    try:
        long = threading.Thread(target=_post_chat, args=(api, f"run-{lora}", 400))
        long.start()
        wait_for(lambda: server.pending_rows >= 1, 30, interval=0.01, what="the long request to be queued")
        refused = _post_chat(api, f"run-{lora}", 2)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "rate_limit_error" and "busy" in refused.json()["error"]["message"]
        long.join()
    finally:
        server.max_pending = before


def test_a_deleted_run_is_gone_from_memory_and_from_v1(client, served, tiny_adapter_source) -> None:
    api, _, _ = served
    rid = _finished_run(api.settings, tiny_adapter_source)
    assert _chat(client, f"run-{rid}", max_tokens=2).choices
    assert f"run-{rid}" in api.app.state.services.serving.loaded()["tiny-random"]
    r = httpx.delete(f"{api.url}/runs/{rid}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 204
    assert not any(m.startswith(f"run-{rid}") for m in api.app.state.services.serving.loaded()["tiny-random"])
    with pytest.raises(openai.NotFoundError):
        _chat(client, f"run-{rid}", max_tokens=2)


def test_the_openai_engine_evaluates_through_this_services_v1(served, tmp_path, monkeypatch) -> None:
    api, lora, _ = served
    monkeypatch.setenv("DISTILL_ENGINE_API_KEY", TOKEN)
    suite = tmp_path / "sums.jsonl"
    suite.write_text("\n".join(json.dumps({"q": f"What is {i} + {i}?", "a": str(2 * i)}) for i in range(4)))
    url = api.url.removesuffix("/api/v1") + "/v1"
    cfg = build_config({"mode": "evaluate", "model": "tiny-random", "engine": "openai", "engine_url": url,
                        "engine_sft_model": f"run-{lora}", "engine_base_model": f"run-{lora}:base",
                        "benchmarks": f"sums={suite}?problem=q&answer=a&grader=number", "num_samples": 2,
                        "general_prompts": False, "max_new_tokens": 6, "output_dir": str(tmp_path / "out")})
    result = run_pipeline(cfg)
    block = result.evaluation["benchmarks"]["sums"]
    assert (block["n_problems"], block["num_samples"]) == (4, 2)
    records = result.evaluation["benchmark_samples"]["sums"]
    assert all(len(r["base"]) == len(r["sft"]) == 2 and all(s["tokens"] <= 6 for s in r["sft"]) for r in records)
    assert result.evaluation["models"]["sft"] == f"run-{lora} at {url}"
    assert not (tmp_path / "out" / "final_model").exists()  # no local weights were needed


def test_the_openai_engine_forces_a_thinking_budget_through_v1(served, monkeypatch) -> None:
    from distill.generation.engine import Prompt, Sampling
    from distill.generation.remote import OpenAIEngine
    from distill.reasoning import Split

    api, lora, _ = served
    monkeypatch.setenv("DISTILL_ENGINE_API_KEY", TOKEN)
    engine = OpenAIEngine(api.v1, {"sft": f"run-{lora}"})
    started = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "<think>\n"}]
    free, forced = engine.generate([
        Prompt(model="sft", messages=started, continue_final=True, sampling=Sampling(max_new_tokens=24)),
        Prompt(model="sft", messages=started, continue_final=True,
               sampling=Sampling(max_new_tokens=24, max_thinking_tokens=5)),
    ])
    assert not free.forced and "</think>" not in free.text  # the random adapter never closes its thought itself
    split = Split.of(forced.text, in_thought=True)
    assert forced.forced and split.closed and forced.text.index("</think>") > 0
    assert forced.new_tokens > 5  # it answered after the forced close


def test_the_openai_engine_names_what_is_wrong_in_one_line(served, monkeypatch) -> None:
    from distill.generation.engine import EngineError
    from distill.generation.remote import OpenAIEngine

    api, lora, _ = served
    monkeypatch.setenv("DISTILL_ENGINE_API_KEY", TOKEN)
    with pytest.raises(EngineError, match="does not serve model 'run-999'"):
        OpenAIEngine(api.v1, {"sft": "run-999"}).check()
    with pytest.raises(EngineError, match="refused the API key"):
        OpenAIEngine(api.v1, {"sft": f"run-{lora}"}, key="wrong").check()
    with pytest.raises(EngineError, match="cannot reach the engine at http://127.0.0.1:9/v1"):
        OpenAIEngine("http://127.0.0.1:9/v1", {"sft": "x"}).check()


def test_separate_reasoning_returns_the_thought_in_reasoning_content(client, served) -> None:
    """As DeepSeek's API and vLLM's reasoning parser: the thought apart, only the answer in ``content``."""
    _, lora, _ = served
    started = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "<think>\n"}]
    forced = {"continue_final_message": True, "add_generation_prompt": False, "max_thinking_tokens": 5}
    args = dict(model=f"run-{lora}", messages=started, max_tokens=24, temperature=0)
    plain = client.chat.completions.create(**args, extra_body=forced).choices[0].message
    split = client.chat.completions.create(**args, extra_body={**forced, "separate_reasoning": True}).choices[0].message
    thought, _, answer = plain.content.partition("</think>")
    assert split.reasoning_content == thought.strip() and split.reasoning_content
    assert split.content == answer.strip() and "</think>" not in split.content
    # Streamed: the thought's deltas in reasoning_content, the answer's in content, the same text as above.
    deltas = {"reasoning_content": "", "content": ""}
    for chunk in client.chat.completions.create(**args, stream=True, extra_body={**forced, "separate_reasoning": True}):
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            deltas["reasoning_content"] += extra.get("reasoning_content") or ""
            deltas["content"] += choice.delta.content or ""
    assert deltas["reasoning_content"].strip() == split.reasoning_content
    assert deltas["content"].strip() == split.content
    # Without the option nothing changes: the whole text in content, no reasoning_content.
    assert "reasoning_content" not in (plain.model_extra or {})
    # An open thought (no budget, the random adapter never closes it): content is None.
    open_ = client.chat.completions.create(**args, extra_body={"continue_final_message": True,
                                                               "add_generation_prompt": False,
                                                               "separate_reasoning": True}).choices[0].message
    assert open_.content is None and open_.reasoning_content



def test_a_finished_run_teaches_through_v1_and_names_its_model_locally(served, tmp_path, monkeypatch) -> None:
    """--teacher_url this service's /v1 with --teacher_model run-N; without a URL, run-N is that run's model folder."""
    api, lora, _ = served
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                                for i in range(3)))
    monkeypatch.setenv("DISTILL_TEACHER_API_KEY", TOKEN)
    cfg = build_config({"mode": "generate", "model": "tiny-random", "dataset": str(problems), "teacher_url": api.v1,
                        "teacher_model": f"run-{lora}", "num_generations": 2, "teacher_max_tokens": 6,
                        "output_dir": str(tmp_path / "gen")})
    report = run_pipeline(cfg).data_report
    f = report["funnel"]
    assert (f["asked"], f["answered"], f["samples"], f["failed"]) == (3, 3, 6, 0)
    assert report["teacher"]["tokens_p95"] <= 6 and sum(report["rejected"].values()) + f["kept"] == 6
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        r = http.post("/runs", json={"mode": "generate", "teacher_model": f"run-{lora}", "dataset": "builtin:reasoning"})
        assert r.status_code == 201, r.text
        teacher = Path(r.json()["config"]["teacher_model"])
        assert teacher.name == "final_model" and (teacher / "adapter_config.json").is_file()
        http.delete(f"/runs/{r.json()['id']}")
