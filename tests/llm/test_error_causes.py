"""The client says what really happened when no HTTP answer came back (LiteLLM says 500 / 408)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from llmops.config import ModelAlias
from llmops.errors import ProviderConnectionError, ProviderError, ProviderTimeoutError
from llmops.llm.client import LLMClient
from llmops.llm.retry import RetryPolicy
from llmops.testing import Fault, ProviderServer

KEY = "sk-test-causes-0123456789"
MODELS = {"openai": ("openai/gpt-4o-mini", "/v1"), "anthropic": ("anthropic/claude-3-haiku", "")}


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as srv:
        yield srv


def _client(settings: Any, provider: str, base: str, **kwargs: Any) -> LLMClient:
    model, _ = MODELS[provider]
    alias = ModelAlias(model=model, params={"api_base": base, "api_key": KEY})
    return LLMClient(settings.model_copy(update={"models": {"m": alias}}), cache_mode="off",
                     retry=RetryPolicy(max_retries=1, base_delay_s=0.01, max_delay_s=0.02), **kwargs)


def _closed_base(provider: str) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{MODELS[provider][1]}"


def _call(client: LLMClient, stream: bool) -> None:
    if stream:
        for _ in client.stream([{"role": "user", "content": "hi"}], model="m"):
            pass
    else:
        client.complete([{"role": "user", "content": "hi"}], model="m")


def _inside_an_except_block(client: LLMClient, stream: bool) -> None:
    # A caller's own handled exception becomes the __context__ of anything re-raised meanwhile,
    # which cuts the exception chain; the cause must still be found.
    try:
        raise KeyError("the caller's own")
    except KeyError:
        _call(client, stream)


@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("call", [_call, _inside_an_except_block], ids=["plain", "in-except"])
def test_a_refused_connection_is_not_an_http_500(settings: Any, provider: str, stream: bool, call: Any) -> None:
    client = _client(settings, provider, _closed_base(provider))
    with pytest.raises(ProviderConnectionError) as info:
        call(client, stream)
    assert info.value.status_code is None and info.value.retryable and info.value.attempts == 2
    assert "connection refused" in str(info.value) and "HTTP 500" not in str(info.value)
    assert "InternalServerError" not in str(info.value)


@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("call", [_call, _inside_an_except_block], ids=["plain", "in-except"])
def test_a_timeout_is_not_an_http_408(settings: Any, server: ProviderServer, provider: str, stream: bool,
                                     call: Any) -> None:
    server.script(Fault.hang(), Fault.hang())
    base = server.openai_base if provider == "openai" else server.anthropic_base
    client = _client(settings, provider, base, timeout_s=0.3)
    with pytest.raises(ProviderTimeoutError) as info:
        call(client, stream)
    assert info.value.status_code is None and info.value.attempts == 2 and server.count == 2
    text = str(info.value)
    assert "HTTP 408" not in text and ("timed out" in text or "no answer within" in text)


@pytest.mark.parametrize("provider", list(MODELS))
def test_a_broken_connection_is_not_an_http_500(settings: Any, server: ProviderServer, provider: str) -> None:
    server.script(Fault.reset(), Fault.reset())
    base = server.openai_base if provider == "openai" else server.anthropic_base
    with pytest.raises(ProviderConnectionError) as info:
        _call(_client(settings, provider, base), False)
    assert info.value.status_code is None and "connection failed" in str(info.value)


@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("status", [500, 408, 503])
@pytest.mark.parametrize("call", [_call, _inside_an_except_block], ids=["plain", "in-except"])
def test_a_status_the_server_sent_keeps_its_code(settings: Any, server: ProviderServer, provider: str,
                                                status: int, call: Any) -> None:
    server.script(Fault.error(status), Fault.error(status))
    base = server.openai_base if provider == "openai" else server.anthropic_base
    with pytest.raises(ProviderError) as info:
        call(_client(settings, provider, base), False)
    assert not isinstance(info.value, ProviderConnectionError)
    assert info.value.status_code == status and f"HTTP {status}" in str(info.value)
    assert info.value.attempts == 2 and "gave up after 2 attempts" in str(info.value)
