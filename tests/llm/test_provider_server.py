"""The provider double itself (llmops.testing.ProviderServer), spoken to with plain httpx."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from llmops.testing import Fault, ProviderServer

KEY = "sk-test-key-123456"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]}
MSG = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi there"}]}
OPENAI_AUTH = {"Authorization": f"Bearer {KEY}"}
ANTHROPIC_AUTH = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture
def server() -> Any:
    with ProviderServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(scope="module", autouse=True)
def _http() -> Any:
    global _client
    # One client for the module: a new httpx client per request costs ~40 ms (its SSL context).
    with httpx.Client(trust_env=False) as _client:
        yield


_client: httpx.Client


def post(server: ProviderServer, path: str, body: Any, headers: dict[str, str], timeout: float = 5) -> httpx.Response:
    return _client.post(server.base_url + path, json=body, headers=headers, timeout=timeout)


def test_openai_success_body(server: ProviderServer) -> None:
    r = post(server, "/v1/chat/completions", CHAT, OPENAI_AUTH)
    assert r.status_code == 200 and r.headers["x-request-id"].startswith("req_")
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "echo: hi there", "refusal": None,
                                             "annotations": []}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 2 and body["usage"]["completion_tokens"] == 3
    assert body["usage"]["total_tokens"] == 5


def test_anthropic_success_body(server: ProviderServer) -> None:
    r = post(server, "/v1/messages", {**MSG, "system": "be kind"}, ANTHROPIC_AUTH)
    body = r.json()
    assert r.status_code == 200 and body["type"] == "message" and body["role"] == "assistant"
    assert body["content"] == [{"type": "text", "text": "echo: hi there"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["input_tokens"] == 4 and body["usage"]["output_tokens"] == 3


def test_openai_auth_errors_are_the_real_bodies(server: ProviderServer) -> None:
    missing = post(server, "/v1/chat/completions", CHAT, {})
    assert missing.status_code == 401
    assert missing.json()["error"]["message"].startswith("You didn't provide an API key")
    wrong = post(server, "/v1/chat/completions", CHAT, {"Authorization": "Bearer sk-nope-00001111"})
    err = wrong.json()["error"]
    assert wrong.status_code == 401 and err["code"] == "invalid_api_key" and err["type"] == "invalid_request_error"
    assert "sk-nope-00001111" not in err["message"] and "1111" in err["message"]
    assert [r.outcome for r in server.requests] == ["auth", "auth"]


def test_anthropic_auth_and_version_errors(server: ProviderServer) -> None:
    wrong = post(server, "/v1/messages", MSG, {"x-api-key": "nope", "anthropic-version": "2023-06-01"})
    assert wrong.status_code == 401
    assert wrong.json()["type"] == "error" and wrong.json()["error"] == {"type": "authentication_error",
                                                                         "message": "invalid x-api-key"}
    no_version = post(server, "/v1/messages", MSG, {"x-api-key": KEY})
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]
    no_max = post(server, "/v1/messages", {k: v for k, v in MSG.items() if k != "max_tokens"}, ANTHROPIC_AUTH)
    assert no_max.status_code == 400 and "max_tokens" in no_max.json()["error"]["message"]


def test_no_key_configured_accepts_anything() -> None:
    with ProviderServer(api_key=None) as srv:
        assert post(srv, "/v1/chat/completions", CHAT, {}).status_code == 200


def test_unknown_route_is_404(server: ProviderServer) -> None:
    assert _client.get(server.base_url + "/v1/chat/completions").status_code == 404
    assert post(server, "/v2/whatever", CHAT, OPENAI_AUTH).status_code == 404


def test_recorded_headers_are_redacted(server: ProviderServer) -> None:
    post(server, "/v1/chat/completions", CHAT, {**OPENAI_AUTH, "x-custom": "kept"})
    post(server, "/v1/messages", MSG, ANTHROPIC_AUTH)
    openai_req, anthropic_req = server.requests
    assert openai_req.headers["authorization"] == "<redacted>" and openai_req.headers["x-custom"] == "kept"
    assert anthropic_req.headers["x-api-key"] == "<redacted>"
    assert KEY not in repr(server.requests)
    assert openai_req.body == CHAT and anthropic_req.model == "claude-haiku-4-5"


def test_scripted_faults_in_order_then_normal(server: ProviderServer) -> None:
    server.script(Fault.error(503), Fault.rate_limited(retry_after=1.5), Fault.rate_limited(),
                  Fault.error(500, "boom", retry_after_ms=200))
    codes = [post(server, "/v1/chat/completions", CHAT, OPENAI_AUTH) for _ in range(5)]
    assert [r.status_code for r in codes] == [503, 429, 429, 500, 200]
    assert codes[1].headers["retry-after"] == "1.5" and "retry-after" not in codes[2].headers
    assert codes[1].json()["error"]["code"] == "rate_limit_exceeded"
    assert codes[3].json()["error"]["message"] == "boom" and codes[3].headers["retry-after-ms"] == "200"
    assert server.pending() == 0
    assert server.stats().by_status == {200: 1, 429: 2, 500: 1, 503: 1}


def test_broken_bodies(server: ProviderServer) -> None:
    server.script(Fault.truncated_json(), Fault.invalid_json(), Fault.empty_choices(), Fault.reset())
    truncated = post(server, "/v1/chat/completions", CHAT, OPENAI_AUTH)
    assert truncated.status_code == 200 and truncated.text.startswith("{")
    with pytest.raises(ValueError):
        truncated.json()
    with pytest.raises(ValueError):
        post(server, "/v1/chat/completions", CHAT, OPENAI_AUTH).json()
    assert post(server, "/v1/chat/completions", CHAT, OPENAI_AUTH).json()["choices"] == []
    with pytest.raises(httpx.TransportError):  # headers, half a body, then a TCP reset
        post(server, "/v1/chat/completions", CHAT, OPENAI_AUTH)
    assert [r.outcome for r in server.requests] == ["truncated_json", "invalid_json", "empty_choices", "reset"]


def test_hang_until_the_client_gives_up(server: ProviderServer) -> None:
    server.script(Fault.hang())
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        post(server, "/v1/chat/completions", CHAT, OPENAI_AUTH, timeout=0.2)
    assert time.perf_counter() - started < 1.0
    deadline = time.monotonic() + 2
    while server.stats().in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.stats().in_flight == 0 and server.requests[0].status is None


def test_stop_releases_a_hanging_request() -> None:
    srv = ProviderServer(api_key=KEY).start()
    srv.script(Fault.hang())
    errors: list[BaseException] = []

    def call() -> None:
        try:
            post(srv, "/v1/chat/completions", CHAT, OPENAI_AUTH, timeout=10)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    while srv.count == 0:
        time.sleep(0.01)
    started = time.perf_counter()
    srv.stop()
    worker.join(5)
    assert not worker.is_alive() and time.perf_counter() - started < 2.0
    assert errors and isinstance(errors[0], httpx.TransportError)
    srv.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        _ = srv.base_url


def test_latency_jitter_and_concurrency_are_measured() -> None:
    with ProviderServer(api_key=KEY, latency_s=0.05, jitter_s=0.02) as srv:
        with ThreadPoolExecutor(8) as pool:
            started = time.perf_counter()
            statuses = list(pool.map(lambda _: post(srv, "/v1/chat/completions", CHAT, OPENAI_AUTH).status_code,
                                     range(8)))
            elapsed = time.perf_counter() - started
        assert statuses == [200] * 8
        assert elapsed >= 0.05  # concurrency is asserted from max_in_flight, not from the clock
        stats = srv.stats()
        assert stats.requests == 8 and 2 <= stats.max_in_flight <= 8 and stats.in_flight == 0
        assert "8 requests" in srv.report() and "200: 8" in srv.report()
        srv.reset()
        assert srv.count == 0 and srv.stats().by_status == {}


def test_random_faults_are_seeded() -> None:
    def statuses(seed: int) -> list[int]:
        with ProviderServer(api_key=KEY, error_rate=0.3, rate_limit_rate=0.2, rate_limit_retry_after=0.1,
                            error_status=502, seed=seed) as srv:
            return [post(srv, "/v1/chat/completions", CHAT, OPENAI_AUTH).status_code for _ in range(40)]

    first = statuses(1)
    assert first == statuses(1)
    assert {200, 429, 502} == set(first)
    assert 4 <= first.count(502) <= 22 and 1 <= first.count(429) <= 16
