"""LLMClient with the scripted fake provider, through the real LiteLLM path.

Retries, Retry-After, bounds, concurrency, cache modes and event loops.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from llmops.config import Settings
from llmops.errors import (
    AuthError,
    CacheMissError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    UserError,
)
from llmops.llm import fake
from llmops.llm.cache import ResponseCache
from llmops.llm.client import CallRecord, LLMClient, litellm_imported, map_exception
from llmops.llm.retry import RetryPolicy

ASK = [{"role": "user", "content": "what is two plus two"}]


def make(settings: Settings, *, max_retries: int = 3, max_total_s: float = 5.0, **kwargs: Any) -> LLMClient:
    return LLMClient(settings, retry=RetryPolicy(max_retries=max_retries, base_delay_s=0.01, max_delay_s=1.0,
                                                 max_total_s=max_total_s), **kwargs)


# ---- the fake through litellm -----------------------------------------------------------------
def test_echo_through_litellm(client: LLMClient) -> None:
    done = client.complete(ASK, "fake/echo")
    assert done.text == "what is two plus two"
    assert done.usage.prompt_tokens == 5 and done.usage.completion_tokens == 5
    assert done.finish_reason == "stop" and done.cost_usd == 0.0 and done.attempts == 1
    assert done.resolved_model == "fake/echo" and done.cache_key
    assert litellm_imported()


# ---- retries ---------------------------------------------------------------------------------
def test_scripted_429_and_500_are_retried(client: LLMClient) -> None:
    fake.script("fake/m", fake.FakeError(429), fake.FakeError(500), fake.FakeError(503), "four")
    done = client.complete(ASK, "fake/m")
    assert done.text == "four" and done.attempts == 4
    assert len(fake.calls("fake/m")) == 4


def test_retry_after_is_honoured(settings: Settings) -> None:
    fake.script("fake/m", fake.FakeError(429, retry_after=0.3), "four")
    started = time.perf_counter()
    done = make(settings).complete(ASK, "fake/m")  # its own backoff would wait ~0.01 s
    elapsed = time.perf_counter() - started
    assert done.attempts == 2
    assert elapsed >= 0.3, elapsed  # the wait chosen is checked exactly in test_real_providers


def test_timeout_is_retried(settings: Settings) -> None:
    fake.script("fake/m", fake.FakeTimeout(), "four")
    started = time.perf_counter()
    done = make(settings, timeout_s=0.1).complete(ASK, "fake/m")
    assert done.text == "four" and done.attempts == 2
    # The first attempt waited out its timeout; no upper bound (it would time LiteLLM's first import too).
    assert time.perf_counter() - started >= 0.1


def test_timeouts_end_in_timeout_error(settings: Settings) -> None:
    fake.script("fake/m", *[fake.FakeTimeout()] * 5)
    with pytest.raises(ProviderTimeoutError) as info:
        make(settings, timeout_s=0.1, max_retries=1).complete(ASK, "fake/m")
    assert info.value.retryable and "fake/m" in str(info.value)
    assert len(fake.calls("fake/m")) == 2


def test_retries_bounded_by_count(settings: Settings) -> None:
    fake.script("fake/m", *[fake.FakeError(503)] * 10)
    with pytest.raises(ProviderError) as info:
        make(settings, max_retries=3).complete(ASK, "fake/m")
    assert info.value.status_code == 503 and info.value.retryable
    assert len(fake.calls("fake/m")) == 4


def test_retries_bounded_by_total_wait(settings: Settings) -> None:
    fake.script("fake/m", *[fake.FakeError(429, retry_after=0.2)] * 10)
    with pytest.raises(RateLimitError) as info:
        make(settings, max_retries=10, max_total_s=0.5).complete(ASK, "fake/m")
    assert info.value.retry_after == pytest.approx(0.2)
    assert len(fake.calls("fake/m")) == 3  # two waits of ~0.2 s fit in 0.5 s, a third does not


@pytest.mark.parametrize(("status", "error"), [(400, ProviderError), (404, ProviderError), (401, AuthError)])
def test_client_errors_are_not_retried(client: LLMClient, status: int, error: type[Exception]) -> None:
    fake.script("fake/m", fake.FakeError(status, "nope"), "never reached")
    with pytest.raises(error) as info:
        client.complete(ASK, "fake/m")
    assert isinstance(info.value, ProviderError)
    assert info.value.status_code == status and not info.value.retryable
    assert len(fake.calls("fake/m")) == 1


def test_our_own_error_inside_a_provider_is_not_wrapped(client: LLMClient) -> None:
    def responder(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        raise UserError("bad input for the fake", key="question")

    fake.script("fake/m", responder=responder)
    with pytest.raises(UserError, match="bad input for the fake"):
        client.complete(ASK, "fake/m")
    assert len(fake.calls("fake/m")) == 1  # a UserError is not a connection error: no retry


def test_unknown_model_is_a_user_error(client: LLMClient) -> None:
    with pytest.raises(UserError) as info:
        client.complete(ASK, "no-such-model-anywhere")
    assert "no-such-model-anywhere" in str(info.value) and info.value.hint


# ---- error mapping details -----------------------------------------------------------------------
class _HeaderError(Exception):
    def __init__(self, headers: dict[str, str], status: int = 429) -> None:
        super().__init__("litellm.RateLimitError: RateLimitError: OpenAIException - slow down")
        self.status_code = status
        self.litellm_response_headers = headers


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after": "2"}, 2.0),
    ({"retry-after": "0.5"}, 0.5),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_retry_after_header_forms(headers: dict[str, str], expected: float | None) -> None:
    err = map_exception(_HeaderError(headers), "openai/x")
    assert isinstance(err, RateLimitError)
    assert err.retry_after == (pytest.approx(expected) if expected is not None else None)
    assert str(err).count("RateLimitError") == 1 and "litellm." not in str(err)


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    err = map_exception(_HeaderError({"retry-after": when}), "openai/x")
    assert isinstance(err, RateLimitError) and err.retry_after is not None
    assert 25 <= err.retry_after <= 31


# ---- concurrency -----------------------------------------------------------------------------------
def test_per_model_concurrency_limit(settings: Settings) -> None:
    for model in ("fake/a", "fake/b"):
        fake.script(model, responder=lambda messages, params: fake.FakeReply("ok", delay_s=0.05))
    client = make(settings, concurrency=2, cache_mode="off")

    async def burst() -> None:
        await asyncio.gather(*[client.acomplete([{"role": "user", "content": f"q{i}"}], model)
                               for i in range(8) for model in ("fake/a", "fake/b")])

    started = time.perf_counter()
    asyncio.run(burst())
    elapsed = time.perf_counter() - started
    assert client.max_in_flight == {"fake/a": 2, "fake/b": 2}  # per model, reached and held
    assert len(fake.calls("fake/a")) == len(fake.calls("fake/b")) == 8
    assert elapsed >= 4 * 0.05  # 8 calls of 50 ms, 2 at a time (the two models in parallel)


def test_after_fork_gives_the_child_its_own_limits(settings: Settings) -> None:
    fake.script("fake/a", responder=lambda messages, params: fake.FakeReply("ok", delay_s=0.05))
    client = make(settings, concurrency=4, cache_mode="off")

    async def burst() -> int:
        client.max_in_flight.clear()
        await asyncio.gather(*[client.acomplete([{"role": "user", "content": f"q{i}"}], "fake/a") for i in range(6)])
        return client.max_in_flight["fake/a"]

    async def both() -> tuple[int, int]:
        before = await burst()
        client.after_fork(1)  # what a forked worker does with its share (same loop: limits rebuilt)
        return before, await burst()

    assert asyncio.run(both()) == (4, 1)
    assert client.concurrency == 1


# ---- cache modes -------------------------------------------------------------------------------------
def test_cache_off_always_calls(settings: Settings) -> None:
    fake.script("fake/m", "one", "two")
    client = make(settings, cache_mode="off")
    assert [client.complete(ASK, "fake/m").text for _ in range(2)] == ["one", "two"]
    assert client.cache is None
    assert not settings.path(settings.cache_path).exists()


def test_read_write_replays_without_the_provider(client: LLMClient) -> None:
    fake.script("fake/m", "four", "five")
    first = client.complete(ASK, "fake/m")
    again = client.complete(ASK, "fake/m")
    assert (first.text, again.text) == ("four", "four")
    assert again.cached and not first.cached and again.cache_key == first.cache_key
    assert again.usage == first.usage
    # A replayed answer costs nothing now; what it cost and took when recorded is kept beside.
    assert again.recorded_latency_s == first.latency_s and again.latency_s != first.latency_s
    assert again.recorded_cost_usd == first.cost_usd and again.cost_usd == 0.0
    assert len(fake.calls("fake/m")) == 1  # the replay did not touch the provider
    assert client.provider_calls == 1


def test_read_only_miss_names_the_request(settings: Settings) -> None:
    client = make(settings, cache_mode="read-only")
    with pytest.raises(CacheMissError) as info:
        client.complete(ASK, "fake/m")
    err = info.value
    assert "fake/m" in str(err) and "what is two plus two" in str(err)
    assert err.key is not None and len(err.key) == 64 and err.hint
    assert fake.calls("fake/m") == []


def test_read_only_serves_what_read_write_recorded(settings: Settings) -> None:
    fake.script("fake/m", "four")
    make(settings).complete(ASK, "fake/m", metadata={"prompt": "math@1"})
    replay = make(settings, cache_mode="read-only")
    done = replay.complete(ASK, "fake/m")
    assert done.text == "four" and done.cached
    assert len(fake.calls("fake/m")) == 1
    with pytest.raises(CacheMissError, match="math@2"):  # the caller's prompt ref is named
        replay.complete([{"role": "user", "content": "other"}], "fake/m", metadata={"prompt": "math@2"})


def test_refresh_calls_again_and_overwrites(settings: Settings) -> None:
    fake.script("fake/m", "old", "new")
    make(settings).complete(ASK, "fake/m")
    refreshed = make(settings, cache_mode="refresh").complete(ASK, "fake/m")
    assert refreshed.text == "new" and not refreshed.cached
    assert make(settings).complete(ASK, "fake/m").text == "new"  # the entry was replaced
    assert len(fake.calls("fake/m")) == 2


def test_repeats_are_independent_cache_entries(client: LLMClient) -> None:
    fake.script("fake/m", "a", "b", "c")
    texts = [client.complete(ASK, "fake/m", repeat=r).text for r in (0, 1, 2)]
    assert texts == ["a", "b", "c"]
    keys = {client.complete(ASK, "fake/m", repeat=r).cache_key for r in (0, 1, 2)}
    assert len(keys) == 3
    assert client.cache is not None and len(client.cache) == 3
    assert [client.complete(ASK, "fake/m", repeat=r).text for r in (0, 1, 2)] == ["a", "b", "c"]
    assert len(fake.calls("fake/m")) == 3


def test_seed_and_params_change_the_key_secrets_do_not(client: LLMClient) -> None:
    fake.script("fake/m", "a", "b", "c")
    base = client.complete(ASK, "fake/m", {"api_key": "k1"}, seed=1)
    assert client.complete(ASK, "fake/m", {"api_key": "k2", "timeout": 3}, seed=1).cached
    assert not client.complete(ASK, "fake/m", {"api_key": "k1"}, seed=2).cached
    assert not client.complete(ASK, "fake/m", {"api_key": "k1", "temperature": 0.5}, seed=1).cached
    assert base.text == "a" and len(fake.calls("fake/m")) == 3


def test_cache_survives_a_new_client(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "shared" / "cache.sqlite"
    fake.script("fake/m", "four")
    first_cache = ResponseCache(path)
    make(settings, cache=first_cache).complete(ASK, "fake/m")
    first_cache.close()
    # A new process would open the same file with a new cache object and a new client.
    second = make(settings, cache=ResponseCache(path), cache_mode="read-only")
    done = second.complete(ASK, "fake/m")
    assert done.text == "four" and done.cached
    assert len(fake.calls("fake/m")) == 1


def test_replay_in_a_new_process_never_imports_litellm(settings: Settings, project: Path) -> None:
    fake.script("fake/m", "four")
    make(settings).complete(ASK, "fake/m")
    code = textwrap.dedent(f"""
        import sys
        from llmops.config import load_settings
        from llmops.llm.client import LLMClient, litellm_imported
        client = LLMClient(load_settings({str(project)!r}), cache_mode="read-only")
        done = client.complete({ASK!r}, "fake/m")
        print(done.text, done.cached, litellm_imported(), "litellm" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=project, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["four", "True", "False", "False"]


# ---- event loops and observers ------------------------------------------------------------------
def test_sync_complete_inside_a_running_loop(client: LLMClient) -> None:
    fake.script("fake/m", "four", "five")

    async def notebook_cell() -> list[str]:
        first = client.complete(ASK, "fake/m")  # sync call while this loop runs
        second = await client.acomplete([{"role": "user", "content": "again"}], "fake/m")
        return [first.text, second.text]

    assert asyncio.run(notebook_cell()) == ["four", "five"]
    assert asyncio.run(notebook_cell()) == ["four", "five"]  # cached, and a second loop is fine
    assert len(fake.calls("fake/m")) == 2


def test_observers_see_success_and_failure_and_cannot_break_calls(settings: Settings) -> None:
    records: list[CallRecord] = []

    def broken(record: CallRecord) -> None:
        raise RuntimeError("observer bug")

    client = make(settings, observers=[broken, records.append], max_retries=0)
    fake.script("fake/m", "four", fake.FakeError(400, "bad"))
    client.complete(ASK, "fake/m", {"api_key": "secret"}, metadata={"case": "c1"})
    with pytest.raises(ProviderError):
        client.complete([{"role": "user", "content": "x"}], "fake/m")
    ok, failed = records
    assert ok.completion is not None and ok.error is None and ok.metadata == {"case": "c1"}
    assert "api_key" not in ok.params
    assert failed.completion is None and isinstance(failed.error, ProviderError)
    assert failed.ended_at >= failed.started_at
