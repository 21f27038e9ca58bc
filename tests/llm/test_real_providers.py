"""The LLM client against local doubles of the OpenAI and Anthropic HTTP APIs.

Real LiteLLM and OpenAI-SDK code paths; only the provider is replaced (llmops.testing).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from llmops.config import ModelAlias, Settings
from llmops.errors import (
    AuthError,
    LLMOpsError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
)
from llmops.llm.client import CallRecord, LLMClient
from llmops.llm.retry import RetryPolicy
from llmops.testing import Fault, ProviderServer

KEY = "sk-test-0123456789abcdef"
OPENAI = "openai/gpt-4o-mini"
# claude-3-5-haiku-20241022 left litellm's price map; this one is in the local map of 1.110.
ANTHROPIC = "anthropic/claude-haiku-4-5-20251001"
MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "hello there world"}]


@pytest.fixture
def server() -> Any:
    with ProviderServer(api_key=KEY) as srv:
        yield srv


def _base(server: ProviderServer, model: str) -> str:
    return server.openai_base if model.startswith("openai/") else server.anthropic_base


def make_client(settings: Settings, server: ProviderServer, *, max_retries: int = 3, max_total_s: float = 5.0,
                timeout_s: float = 5.0, concurrency: int | None = None, **kwargs: Any) -> LLMClient:
    """A client whose aliases `oai` and `claude` point at the double (api_base and key as alias params)."""
    models = {
        "oai": ModelAlias(model=OPENAI, params={"api_base": server.openai_base, "api_key": KEY}),
        "claude": ModelAlias(model=ANTHROPIC, params={"api_base": server.anthropic_base, "api_key": KEY}),
    }
    configured = settings.model_copy(update={"models": models})
    return LLMClient(configured, cache_mode=kwargs.pop("cache_mode", "off"), concurrency=concurrency,
                     retry=RetryPolicy(max_retries=max_retries, base_delay_s=0.01, max_delay_s=1.0,
                                       max_total_s=max_total_s),
                     timeout_s=timeout_s, **kwargs)


def record_waits(client: LLMClient) -> list[tuple[int, float | None, float]]:
    """(attempt, provider's Retry-After, wait chosen) for each retry the client decides on.

    What the client chose to wait is asserted, not the gap between two requests: a loaded
    machine stretches the gap but never shortens it.
    """
    chosen: list[tuple[int, float | None, float]] = []

    class Recorded(RetryPolicy):
        def delay(self, attempt: int, retry_after: float | None, rng: Any = None) -> float:
            chosen.append((attempt, retry_after, super().delay(attempt, retry_after, rng)))
            return chosen[-1][2]

    client.retry = Recorded(**{f: getattr(client.retry, f) for f in client.retry.__dataclass_fields__})
    return chosen


BOTH = pytest.mark.parametrize(("alias", "model"), [("oai", OPENAI), ("claude", ANTHROPIC)],
                               ids=["openai", "anthropic"])


def _prices(model: str) -> tuple[float, float]:
    import litellm

    info = litellm.model_cost[model.split("/", 1)[1]]
    return float(info["input_cost_per_token"]), float(info["output_cost_per_token"])


# ---- success path ---------------------------------------------------------------------------
@BOTH
def test_completion_text_usage_and_cost(settings: Settings, server: ProviderServer, alias: str, model: str) -> None:
    records: list[CallRecord] = []
    client = make_client(settings, server, observers=[records.append])

    done = client.complete(MESSAGES, alias, {"max_tokens": 50})

    assert done.text == "echo: hello there world"
    assert done.finish_reason == "stop"
    assert done.model == alias and done.resolved_model == model
    assert done.attempts == 1 and not done.cached
    seen = server.requests
    assert len(seen) == 1 and seen[0].auth_ok and seen[0].outcome == "ok"
    assert seen[0].model == model.split("/", 1)[1]
    assert done.usage.prompt_tokens == seen[0].prompt_tokens == 5  # the double counts words: 2 + 3
    assert done.usage.completion_tokens == seen[0].completion_tokens == 4
    price_in, price_out = _prices(model)
    expected = done.usage.prompt_tokens * price_in + done.usage.completion_tokens * price_out
    assert done.cost_usd > 0
    assert done.cost_usd == pytest.approx(expected, rel=1e-12)
    import litellm

    theirs = sum(litellm.cost_per_token(model=model, prompt_tokens=5, completion_tokens=4))
    assert done.cost_usd == pytest.approx(theirs, rel=1e-9)
    # Credentials never leave the client except in the auth header (recorded redacted).
    header = "authorization" if model.startswith("openai/") else "x-api-key"
    assert seen[0].headers[header] == "<redacted>"
    assert KEY not in repr(seen[0]) and KEY not in repr(records)
    assert "api_key" not in records[0].params and records[0].params["api_base"] == _base(server, model)


@BOTH
def test_max_tokens_gives_finish_reason_length(settings: Settings, server: ProviderServer, alias: str,
                                               model: str) -> None:
    server.responder = lambda provider, messages: "one two three four five six seven"
    done = make_client(settings, server).complete(MESSAGES, alias, {"max_tokens": 3})
    assert done.text == "one two three"
    assert done.finish_reason == "length"
    assert done.usage.completion_tokens == 3


def test_anthropic_request_shape(settings: Settings, server: ProviderServer) -> None:
    make_client(settings, server).complete(MESSAGES, "claude", {"max_tokens": 20, "temperature": 0})
    (req,) = server.requests
    assert req.path == "/v1/messages"
    assert req.headers["anthropic-version"]
    assert req.body["system"] and req.body["max_tokens"] == 20
    assert [m["role"] for m in req.body["messages"]] == ["user"]


def test_openai_request_shape(settings: Settings, server: ProviderServer) -> None:
    make_client(settings, server).complete(MESSAGES, "oai", {"max_tokens": 20, "temperature": 0}, seed=7)
    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.body["seed"] == 7 and req.body["temperature"] == 0
    assert [m["role"] for m in req.body["messages"]] == ["system", "user"]
    # The OpenAI SDK's own retries are off: it says so in its header.
    assert req.headers["x-stainless-retry-count"] == "0"


def test_params_passed_per_call_work_without_alias(settings: Settings, server: ProviderServer) -> None:
    client = make_client(settings, server)
    done = client.complete(MESSAGES, OPENAI, {"api_base": server.openai_base, "api_key": KEY})
    assert done.model == done.resolved_model == OPENAI and done.cost_usd > 0


# ---- authentication ---------------------------------------------------------------------------
@BOTH
def test_wrong_key_is_auth_error_without_retry(settings: Settings, server: ProviderServer, alias: str,
                                               model: str) -> None:
    client = make_client(settings, server)
    with pytest.raises(AuthError) as info:
        client.complete(MESSAGES, alias, {"api_key": "sk-wrong-key-9999"})
    err = info.value
    assert err.status_code == 401 and not err.retryable
    expected = "Incorrect API key provided" if model.startswith("openai/") else "invalid x-api-key"
    assert expected in str(err)
    assert "sk-wrong-key-9999" not in str(err)  # the provider's body masks it; we add nothing
    assert server.count == 1 and server.requests[0].outcome == "auth"


@pytest.mark.parametrize(("model", "env_var"), [(OPENAI, "OPENAI_API_KEY"), (ANTHROPIC, "ANTHROPIC_API_KEY")],
                         ids=["openai", "anthropic"])
def test_missing_key_names_the_env_var(settings: Settings, server: ProviderServer, model: str,
                                       env_var: str) -> None:
    client = make_client(settings, server)
    started = time.perf_counter()
    with pytest.raises(AuthError) as info:
        client.complete(MESSAGES, model, {"api_base": _base(server, model)})
    err = info.value
    assert env_var in err.env_vars
    assert err.hint is not None and env_var in err.hint
    assert env_var in str(err)
    assert not err.retryable
    assert time.perf_counter() - started < 1.0  # not retried
    assert server.count == 0  # the SDK refused to send a keyless request


@pytest.mark.parametrize(("model", "env_var"), [(OPENAI, "OPENAI_API_KEY"), (ANTHROPIC, "ANTHROPIC_API_KEY")],
                         ids=["openai", "anthropic"])
def test_key_from_environment(settings: Settings, server: ProviderServer, monkeypatch: pytest.MonkeyPatch,
                              model: str, env_var: str) -> None:
    monkeypatch.setenv(env_var, KEY)
    done = make_client(settings, server).complete(MESSAGES, model, {"api_base": _base(server, model)})
    assert done.text == "echo: hello there world"
    assert server.requests[0].auth_ok


# ---- errors and retries --------------------------------------------------------------------------
@BOTH
def test_400_is_not_retried(settings: Settings, server: ProviderServer, alias: str, model: str) -> None:
    server.script(Fault.error(400, "Unsupported value: 'temperature'"))
    with pytest.raises(ProviderError) as info:
        make_client(settings, server).complete(MESSAGES, alias)
    err = info.value
    assert type(err) is ProviderError
    assert err.status_code == 400 and not err.retryable
    assert "Unsupported value" in str(err)
    assert server.count == 1


@BOTH
@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_then_succeed(settings: Settings, server: ProviderServer, alias: str,
                                                model: str, status: int) -> None:
    server.script(Fault.error(status), Fault.error(status))
    done = make_client(settings, server).complete(MESSAGES, alias)
    assert done.text == "echo: hello there world"
    assert done.attempts == 3
    assert [r.status for r in server.requests] == [status, status, 200]


@BOTH
def test_retry_after_is_honoured(settings: Settings, server: ProviderServer, alias: str, model: str) -> None:
    server.script(Fault.rate_limited(retry_after=0.3))
    client = make_client(settings, server)  # its own backoff would wait ~0.01 s
    chosen = record_waits(client)
    done = client.complete(MESSAGES, alias)
    assert done.attempts == 2
    first, second = server.requests
    assert first.status == 429
    assert second.received_at - first.received_at >= 0.3  # it did wait (a slow machine only waits longer)
    ((_, retry_after, wait),) = chosen
    assert retry_after == 0.3 and 0.3 <= wait <= 0.33  # the provider's wait, plus at most 10% jitter


def test_retry_after_ms_is_honoured(settings: Settings, server: ProviderServer) -> None:
    server.script(Fault.rate_limited(retry_after_ms=250))
    client = make_client(settings, server)
    chosen = record_waits(client)
    done = client.complete(MESSAGES, "oai")
    first, second = server.requests
    assert done.attempts == 2 and second.received_at - first.received_at >= 0.25
    ((_, retry_after, wait),) = chosen
    assert retry_after == 0.25 and 0.25 <= wait <= 0.275


@BOTH
def test_429_without_retry_after_uses_our_backoff(settings: Settings, server: ProviderServer, alias: str,
                                                  model: str) -> None:
    server.script(Fault.rate_limited())
    client = make_client(settings, server)
    chosen = record_waits(client)
    done = client.complete(MESSAGES, alias)
    assert done.attempts == 2 and len(server.requests) == 2
    # The one wait came from our backoff (base 0.01 s: 5-10 ms), not from a provider hint, and
    # the pacer added none: without Retry-After it has nothing to pause for.
    ((attempt, retry_after, wait),) = chosen
    assert attempt == 1 and retry_after is None and 0.005 <= wait <= 0.01
    (pacer,) = client.pacers.values()
    assert pacer.throttled_count == 1 and pacer.reserve()[1] == 0.0


@BOTH
def test_retries_bounded_by_count_and_litellm_adds_none(settings: Settings, server: ProviderServer,
                                                        alias: str, model: str) -> None:
    server.script(*[Fault.error(503)] * 10)
    with pytest.raises(ProviderError) as info:
        make_client(settings, server, max_retries=2).complete(MESSAGES, alias)
    assert info.value.status_code == 503 and info.value.retryable
    assert server.count == 3  # exactly 1 + max_retries: neither litellm nor the SDK retried

    server.reset()
    server.script(Fault.error(500))
    with pytest.raises(ProviderError):
        make_client(settings, server, max_retries=0).complete(MESSAGES, alias)
    assert server.count == 1


@BOTH
def test_retries_bounded_by_total_wait(settings: Settings, server: ProviderServer, alias: str, model: str) -> None:
    server.script(*[Fault.rate_limited(retry_after=0.2)] * 10)
    client = make_client(settings, server, max_retries=10, max_total_s=0.5)
    started = time.perf_counter()
    with pytest.raises(RateLimitError) as info:
        client.complete(MESSAGES, alias)
    elapsed = time.perf_counter() - started
    assert info.value.status_code == 429 and info.value.retry_after == pytest.approx(0.2)
    # Waits of 0.2 s (+ <=10% jitter) each: two fit in 0.5 s, a third would not.
    assert server.count == 3
    assert elapsed >= 0.4  # both waits happened (a loaded machine only makes it longer)


@BOTH
def test_hanging_request_times_out_and_is_retried(settings: Settings, server: ProviderServer, alias: str,
                                                  model: str) -> None:
    server.script(Fault.hang())
    client = make_client(settings, server, timeout_s=0.3)
    started = time.perf_counter()
    done = client.complete(MESSAGES, alias)
    assert done.attempts == 2 and done.text == "echo: hello there world"
    assert 0.3 <= time.perf_counter() - started < 1.5


@BOTH
def test_hanging_requests_end_in_timeout_error(settings: Settings, server: ProviderServer, alias: str,
                                               model: str) -> None:
    server.script(Fault.hang(), Fault.hang())
    client = make_client(settings, server, timeout_s=0.2, max_retries=1)
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError) as info:
        client.complete(MESSAGES, alias)
    assert info.value.retryable
    assert time.perf_counter() - started < 1.5
    assert server.count == 2
    # The client hung up; the server sees no request left in flight.
    deadline = time.monotonic() + 2.0
    while server.stats().in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.stats().in_flight == 0


MALFORMED = [Fault.reset(), Fault.truncated_json(), Fault.invalid_json()]


@BOTH
@pytest.mark.parametrize("fault", MALFORMED, ids=[f.kind for f in MALFORMED])
def test_broken_responses_are_retried(settings: Settings, server: ProviderServer, alias: str, model: str,
                                      fault: Fault) -> None:
    server.script(fault)
    done = make_client(settings, server).complete(MESSAGES, alias)
    assert done.attempts == 2 and done.text == "echo: hello there world"


@BOTH
@pytest.mark.parametrize("fault", MALFORMED, ids=[f.kind for f in MALFORMED])
def test_broken_responses_end_in_provider_error(settings: Settings, server: ProviderServer, alias: str,
                                                model: str, fault: Fault) -> None:
    server.script(fault, fault)
    with pytest.raises(LLMOpsError) as info:
        make_client(settings, server, max_retries=1).complete(MESSAGES, alias)
    assert isinstance(info.value, ProviderError) and info.value.retryable
    assert server.count == 2


def test_empty_choices_is_retried_then_explicit_error(settings: Settings, server: ProviderServer) -> None:
    server.script(Fault.empty_choices())
    assert make_client(settings, server).complete(MESSAGES, "oai").attempts == 2
    server.script(Fault.empty_choices(), Fault.empty_choices())
    with pytest.raises(ProviderError, match="no choices"):
        make_client(settings, server, max_retries=1).complete(MESSAGES, "oai")


def test_anthropic_empty_content_is_an_empty_answer(settings: Settings, server: ProviderServer) -> None:
    # Anthropic legitimately answers `content: []` (e.g. a stop sequence at once): not an error.
    server.script(Fault.empty_choices())
    done = make_client(settings, server).complete(MESSAGES, "claude")
    assert done.text == "" and done.attempts == 1


# ---- concurrency, event loops, cache ------------------------------------------------------------
@BOTH
def test_per_model_concurrency_limit_is_held(settings: Settings, server: ProviderServer, alias: str,
                                             model: str) -> None:
    server.latency_s = 0.1  # long enough for 3 calls to overlap even on a busy machine
    client = make_client(settings, server, concurrency=3)

    async def burst() -> list[str]:
        calls = [client.acomplete([{"role": "user", "content": f"question {i}"}], alias) for i in range(12)]
        return [c.text for c in await asyncio.gather(*calls)]

    started = time.perf_counter()
    texts = asyncio.run(burst())
    elapsed = time.perf_counter() - started
    assert texts == [f"echo: question {i}" for i in range(12)]
    assert server.count == 12
    assert server.max_in_flight == 3  # reached, never exceeded
    assert client.max_in_flight[model] == 3
    assert elapsed >= 4 * 0.1


def test_sync_complete_inside_running_loop_over_http(settings: Settings, server: ProviderServer) -> None:
    client = make_client(settings, server)

    async def notebook_cell() -> str:
        return client.complete(MESSAGES, "oai").text + " / " + (await client.acomplete(MESSAGES, "claude")).text

    # Two loops in a row: litellm's cached HTTP clients must not be tied to a closed loop.
    assert asyncio.run(notebook_cell()) == "echo: hello there world / echo: hello there world"
    assert asyncio.run(notebook_cell()) == "echo: hello there world / echo: hello there world"
    assert server.count == 4


def test_cached_replay_does_not_call_the_provider(settings: Settings, server: ProviderServer,
                                                  tmp_path: Path) -> None:
    client = make_client(settings, server, cache_mode="read-write")
    first = client.complete(MESSAGES, "oai")
    again = client.complete(MESSAGES, "oai")
    assert server.count == 1
    assert again.cached and not first.cached
    assert (again.text, again.usage) == (first.text, first.usage)
    # A replayed answer costs nothing now; what it cost when recorded is kept apart (issue 23 §2).
    assert first.cost_usd > 0 and again.cost_usd == 0.0 and again.recorded_cost_usd == first.cost_usd
