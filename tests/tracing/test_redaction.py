from __future__ import annotations

import pytest

from llmops.llm.types import Message
from llmops.tracing.model import SpanRecord, TraceAttributes
from llmops.tracing.redaction import FAILED, REDACTED, Redactor

SECRETS = {
    "openai": "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "anthropic": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "langfuse": "sk-lf-1234abcd-5678-efgh",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "slack": "xoxb-123456789012-abcdefghijkl",
    "google": "AIzaSyA1234567890abcdefghijklmnopqrstu",
    "huggingface": "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    "stripe": "sk_live_abcdefghijklmnopqrstuvwx",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_builtin_key_patterns(kind: str) -> None:
    secret = SECRETS[kind]
    out = Redactor().text(f"before {secret} after")
    assert secret not in out
    assert out.startswith("before ") and out.endswith(" after")
    assert REDACTED in out


@pytest.mark.parametrize(("text", "secret", "kept"), [
    ("Authorization: Bearer abc.def-ghi_jkl012", "abc.def-ghi_jkl012", "Authorization: "),
    ("curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA=='", "dXNlcjpwYXNzd29yZA==", "curl -H"),
    ("use bearer Zm9vYmFyYmF6cXV4MTIz please", "Zm9vYmFyYmF6cXV4MTIz", "please"),
    ("postgres://admin:hunter2secret@db.internal:5432/app", "hunter2secret", "postgres://admin:"),
    ("https://user:p%40ss@example.com/path", "p%40ss", "@example.com/path"),
    ("password=correct-horse-battery", "correct-horse-battery", "password="),
    ('{"api_key": "abcd1234efgh"}', "abcd1234efgh", '"api_key"'),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "MIIEpAIBAAKCAQEA",
     ""),
])
def test_bearer_url_password_and_key_value(text: str, secret: str, kept: str) -> None:
    out = Redactor().text(text)
    assert secret not in out
    assert kept in out


def test_prose_is_left_alone() -> None:
    text = "The token limit was reached; see the password policy and https://example.com/docs."
    assert Redactor().text(text) == text


def test_secret_keys_are_replaced_whole_in_mappings() -> None:
    r = Redactor()
    out = r.value({"headers": {"Authorization": "anything at all", "X-Api-Key": "k"}, "api_key": "short",
                   "nested": [{"password": "x"}], "model": "gpt"})
    assert out == {"headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED}, "api_key": REDACTED,
                   "nested": [{"password": REDACTED}], "model": "gpt"}


def test_user_hook_runs_after_builtins_and_fails_closed() -> None:
    r = Redactor(lambda s: s.replace("ACME-42", "[internal]"))
    assert r.text("ticket ACME-42 with sk-proj-AbCdEfGhIjKlMnOpQrStUv") == f"ticket [internal] with {REDACTED}"

    def broken(s: str) -> str:
        raise RuntimeError("bug in the hook")

    r = Redactor(broken)
    assert r.text("secret stuff") == FAILED
    assert r.failures == 1
    r = Redactor(lambda s: None)  # type: ignore[arg-type,return-value]
    assert r.text("x") == FAILED


def test_span_redaction_covers_every_user_field() -> None:
    secret = SECRETS["openai"]
    span = SpanRecord(
        trace_id="1" * 32, span_id="2" * 16, parent_id=None, name=f"call {secret}", kind="generation",
        start_time=0.0, end_time=1.0, status="error", error=f"401 invalid key {secret}",
        input=(Message("user", f"my key is {secret}"),), output=f"echo {secret}",
        metadata={"note": secret, "deep": [{"x": secret}]}, params={"api_base": f"https://u:{secret}@h/v1"},
        attributes=TraceAttributes(user_id=secret, tags=(secret,), metadata={"k": secret}))
    out = Redactor().span(span)
    assert secret not in repr(out)
    assert out.input == [{"role": "user", "content": f"my key is {REDACTED}"}]
