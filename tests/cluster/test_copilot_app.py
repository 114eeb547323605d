"""The copilot over real HTTP through Ray Serve, with the real default model (SmolLM2-135M-Instruct).

One private cluster and one deployment (search + copilot) for the module; answers are kept short
(``max_tokens`` 16-24) so that the module runs in a few minutes on two busy cores.
"""
import json

import httpx
import pytest

from predator.sample import generate
from tests.cluster.indexed_corpus import index_corpus
from tests.conftest import free_port

pytestmark = pytest.mark.cluster

SHORT = 24


@pytest.fixture(scope="module")
def corpus():
    records, _ = generate(60, seed=5)
    return records


@pytest.fixture(scope="module")
def base_model(llm_cache_dir):
    from predator.llm import load_model, resolve_model

    return load_model(resolve_model(None), llm_cache_dir)


def save_adapter(base_model, path, seed):
    """A tiny random LoRA (r=4 on q and v): different seeds, different answers."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    peft_model = get_peft_model(base_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                       init_lora_weights=False))
    peft_model.save_pretrained(path)
    peft_model.unload()  # the base model again, for the next adapter
    return path


@pytest.fixture(scope="module")
def app(ray_cluster, tmp_path_factory, corpus, hs_cache_dir, llm_cache_dir, base_model):
    """Ingest the corpus, two adapter folders, search and copilot apps on a free port."""
    from ray import serve

    from serve_apps.copilot import build_app as build_copilot
    from serve_apps.search import build_app as build_search

    root = tmp_path_factory.mktemp("copilot-app")
    overrides = {"data_dir": str(root / "data"), "hs_cache_dir": hs_cache_dir, "llm_cache_dir": llm_cache_dir,
                 "llm_max_new_tokens": SHORT}
    settings, keys = index_corpus(root, corpus, **{k: v for k, v in overrides.items() if k != "data_dir"})
    for name, seed in (("alpha", 1), ("beta", 2)):
        save_adapter(base_model, settings.data_dir / "adapters" / name, seed)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_search({"data_dir": overrides["data_dir"], "hs_cache_dir": hs_cache_dir}),
              name="search", route_prefix="/")
    serve.run(build_copilot(overrides), name="copilot", route_prefix="/copilot")
    yield f"http://127.0.0.1:{port}", keys, settings
    serve.shutdown()


def chat(app, body, role="viewer", headers=None):
    base, keys, _ = app
    return httpx.post(f"{base}/copilot/chat", json={"max_tokens": SHORT, **body}, timeout=120,
                      headers=headers if headers is not None else {"Authorization": f"Bearer {keys[role]}"})


def ask(question, **extra):
    return {"messages": [{"role": "user", "content": question}], **extra}


def sse_events(response):
    """(event, data) pairs of a server-sent event stream."""
    event, events = None, []
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((event, json.loads(line.removeprefix("data: "))))
            event = None
    return events


def test_a_question_about_a_record_gets_an_answer_that_cites_it(app, corpus):
    target = corpus[7]
    # Long enough for the model to write the id (22 tokens) it answers about.
    answer = chat(app, ask(f"What is the HS code of {target.id}?", max_tokens=48))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["context"][0]["id"] == target.id  # a record named in the question is retrieved first
    assert target.id in [c["record_id"] for c in body["citations"]], body["answer"]
    assert body["answer"] and body["grounding"]["sentences"]
    assert all(0 <= s["score"] <= 1 for s in body["grounding"]["sentences"])
    assert body["usage"]["completion_tokens"] <= 48 and body["truncation"]["truncated"] is False
    timings = body["timings"]
    assert 0 < timings["retrieve_ms"] < timings["first_token_ms"] <= timings["total_ms"]


def test_streaming_yields_tokens_then_one_final_event_with_citations_grounding_and_timings(app, corpus):
    base, keys, _ = app
    with httpx.stream("POST", f"{base}/copilot/chat", timeout=120, headers={"Authorization": f"Bearer {keys['viewer']}"},
                      json={**ask(f"Which country is the origin of {corpus[3].id}?"), "stream": True,
                            "max_tokens": SHORT}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "context" and kinds[-1] == "final" and kinds.count("final") == 1
    tokens = [data["text"] for kind, data in events if kind == "token"]
    assert len(tokens) >= 2 and set(kinds[1:-1]) == {"token"}
    final = events[-1][1]
    assert {"answer", "citations", "citations_removed", "grounding", "timings", "context"} <= set(final)
    assert final["usage"]["completion_tokens"] >= len(tokens)
    assert final["answer"].split()[0] in "".join(tokens)


def test_two_adapters_are_served_by_one_replica_and_answer_differently(app, corpus):
    question = ask(f"Who imported the goods of {corpus[5].id}?", max_tokens=16)
    answers = {name: chat(app, {**question, "adapter": name}) for name in ("alpha", "beta")}
    for name, answer in answers.items():
        assert answer.status_code == 200, answer.text
        assert answer.json()["adapter"] == name
    alpha, beta = answers["alpha"].json(), answers["beta"].json()
    assert alpha["answer"] != beta["answer"]
    assert alpha["served_by"]["replica"] == beta["served_by"]["replica"]
    assert {"alpha", "beta"} <= set(beta["served_by"]["adapters_loaded"])
    base = chat(app, question).json()
    assert base["adapter"] is None and base["answer"] not in (alpha["answer"], beta["answer"])


def test_an_adapter_registered_in_mlflow_after_the_deploy_is_served_by_name(app, corpus, base_model, tmp_path):
    import mlflow

    from predator.adapters import register

    _, _, settings = app
    folder = save_adapter(base_model, tmp_path / "gamma", seed=3)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    experiment = mlflow.create_experiment("copilot-test", artifact_location=settings.mlflow_artifact_dir.as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(folder), artifact_path="adapter")
    register(settings.mlflow_uri, "gamma", run.info.run_id, run.info.artifact_uri, {"base_model": "test"})

    answer = chat(app, {**ask(f"What is the HS code of {corpus[1].id}?"), "adapter": "gamma", "max_tokens": 8})
    assert answer.status_code == 200, answer.text
    assert answer.json()["adapter"] == "gamma"
    pinned = chat(app, {**ask(f"What is the HS code of {corpus[1].id}?"), "adapter": "gamma/1", "max_tokens": 8})
    assert pinned.status_code == 200, pinned.text


def test_an_unknown_adapter_is_a_404_that_lists_those_available(app):
    answer = chat(app, {**ask("Which HS code?"), "adapter": "no-such-adapter"})
    assert answer.status_code == 404
    detail = answer.json()["detail"]
    assert detail["field"] == "adapter" and "no-such-adapter" in detail["reason"]
    assert {"alpha", "beta"} <= set(detail["available"])


@pytest.mark.parametrize("body,status,needle", [
    ({"messages": []}, 400, "at least one message"),
    (ask("   "), 400, "question is empty"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, 400, "last message"),
    ({"messages": [{"role": "tool", "content": "q"}]}, 400, "must be one of"),
    (ask("q", max_tokens=100_000), 400, "max_tokens"),
    (ask("q", filters={"hs_prefix": "84a"}), 400, "hs_prefix"),
    (ask("q", colour="red"), 422, "colour"),
    ({"messages": "hello"}, 422, "messages"),
])
def test_bad_input_is_a_4xx_with_a_reason(app, body, status, needle):
    answer = chat(app, body)
    assert answer.status_code == status and needle in answer.text, answer.text


def test_every_endpoint_but_liveness_needs_a_key(app):
    base, _, _ = app
    assert httpx.get(f"{base}/copilot/healthz").status_code == 200
    assert chat(app, ask("q"), headers={}).status_code == 401
    assert chat(app, ask("q"), headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{base}/copilot/v1/models").status_code == 401


def test_over_long_input_is_truncated_by_the_stated_policy_and_reported(app, corpus):
    history = [{"role": "user", "content": "earlier question " * 100}, {"role": "assistant", "content": "earlier answer"}]
    question = f"What is the HS code of {corpus[2].id}? " + "Please explain in detail. " * 250
    answer = chat(app, {"messages": [*history, {"role": "user", "content": question}], "max_tokens": 4})
    assert answer.status_code == 200, answer.text
    truncation = answer.json()["truncation"]
    assert truncation["truncated"] and truncation["dropped_turns"] == 2
    assert len(truncation["dropped_records"]) == 4 and truncation["question_tokens_cut"] > 0
    assert truncation["prompt_tokens"] <= truncation["max_input_tokens"]
    assert [r["id"] for r in answer.json()["context"]] == [corpus[2].id]


def test_a_stock_openai_client_gets_a_completion_and_a_stream(app, corpus):
    import openai

    base, keys, _ = app
    client = openai.OpenAI(base_url=f"{base}/copilot/v1", api_key=keys["viewer"], max_retries=0)
    models = [m.id for m in client.models.list()]
    model = models[0]
    assert f"{model}:alpha" in models and f"{model}:beta" in models
    question = [{"role": "user", "content": f"What is the HS code of {corpus[4].id}?"}]

    completion = client.chat.completions.create(model=model, messages=question, max_tokens=48)
    assert completion.choices[0].message.content and completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens <= 48
    assert corpus[4].id in [c["record_id"] for c in completion.model_extra["copilot"]["citations"]]

    chunks = list(client.chat.completions.create(model=f"{model}:alpha", messages=question, max_tokens=16,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text and len(finals) == 1 and "grounding" in finals[0].model_extra["copilot"]
    assert chunks[-1].usage.completion_tokens <= 16

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=question)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=f"{model}:no-such-adapter", messages=question)
