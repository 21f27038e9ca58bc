"""The client's trimmed LiteLLM path: our price instead of litellm's, its logging only when wanted,
its request setup inline for known providers. Functional checks (benchmarks live in bench/)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from llmops.config import load_settings
from llmops.llm import client as client_mod
from llmops.llm import fake, loader
from llmops.llm.client import LLMClient
from llmops.testing import ProviderServer

KEY = "sk-fast-path-123456"


def _client(project: Path, server: ProviderServer) -> LLMClient:
    models = {"srv": {"model": "openai/gpt-4o-mini", "params": {"api_base": server.openai_base, "api_key": KEY}}}
    return LLMClient(load_settings(project, overrides={"models": models, "cache": "off"}))


def test_litellm_prices_and_logs_only_when_one_of_its_callbacks_wants_it(project: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    real = client_mod._to_completion

    def spy(response: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((response._hidden_params or {}).get("response_cost"))
        return real(response, *args, **kwargs)

    monkeypatch.setattr(client_mod, "_to_completion", spy)
    with ProviderServer(api_key=KEY) as server:
        client = _client(project, server)
        lean = client.complete([{"role": "user", "content": "one two three"}], "srv")
        assert seen[-1] is None  # litellm's cost calculator did not run
        assert lean.cost_usd > 0  # our cached price lookup did

        litellm = loader.load_litellm()
        from litellm.integrations.custom_logger import CustomLogger

        logged: list[Any] = []

        class Recorder(CustomLogger):  # type: ignore[misc]
            async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any,
                                              end_time: Any) -> None:
                logged.append(kwargs.get("response_cost"))

        for name in loader.CALLBACK_LISTS:  # litellm copies callbacks around: restore them all
            monkeypatch.setattr(litellm, name, list(getattr(litellm, name)))
        monkeypatch.setattr(litellm, "callbacks", [Recorder()])

        async def call_and_let_it_log() -> Any:
            completion = await client.acomplete([{"role": "user", "content": "four five six"}], "srv")
            for _ in range(100):  # litellm logs from a task of the call's loop
                if logged:
                    break
                await asyncio.sleep(0.02)
            return completion

        full = asyncio.run(call_and_let_it_log())
        assert seen[-1] == pytest.approx(full.cost_usd)  # the full path: litellm priced it too
        assert logged == [pytest.approx(full.cost_usd)]  # and its callback got the call


def test_request_setup_runs_inline_for_known_providers(client: LLMClient) -> None:
    fake.script("fake/m", "hi")

    async def call() -> Any:
        await client.acomplete([{"role": "user", "content": "x"}], "fake/m")
        return asyncio.get_running_loop()._default_executor  # type: ignore[attr-defined]

    executor = asyncio.run(call())
    assert isinstance(executor, loader.InlineSetupExecutor)
    assert not executor._threads  # the setup never needed a thread


def test_a_loop_with_its_own_executor_keeps_it(client: LLMClient) -> None:
    import concurrent.futures

    fake.script("fake/m", "hi")
    mine = concurrent.futures.ThreadPoolExecutor(max_workers=2)

    async def call() -> Any:
        asyncio.get_running_loop().set_default_executor(mine)
        completion = await client.acomplete([{"role": "user", "content": "x"}], "fake/m")
        return completion.text, asyncio.get_running_loop()._default_executor  # type: ignore[attr-defined]

    text, executor = asyncio.run(call())
    assert text == "hi" and executor is mine
