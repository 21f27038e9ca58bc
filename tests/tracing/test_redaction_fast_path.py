"""The redactor's fast paths (substring gates, one combined search, remembered strings) change
nothing: the same text out as applying every pattern to every string."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.tracing.redaction import BUILTIN_PATTERNS, Redactor

FRAGMENTS = [
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv", "sk-lf-1234abcd-5678",
    "pk-lf-abcdefgh12", "AKIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPLE", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "github_pat_abcdefghijklmnopqrstuvwxyz0123", "xoxb-123456789012-abcdef", "AIzaSyA1234567890abcdefghijklmnopqrstu",
    "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "sk_live_abcdefghijklmnopqrstuvwx", "rk_test_abcdefghijklmnopq",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "Authorization: Bearer abc.def-ghi",
    "AUTHORIZATION=token12345678", "bearer Zm9vYmFyYmF6cXV4MTIz", "postgres://admin:hunter2secret@db:5432/app",
    "password=correct-horse", "PassWord: hunter22", "pwd=abcd", "api-key: 12345678", "APIKEY=zzzzzzzz",
    "client_secret = s3cr3tvalue", "access_token:abcdefgh", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA "
    "PRIVATE KEY-----", "key", "secret", "token", "://", "@", ":", "=", " ", "\n", "plain words", "Case 000123.",
    "openai/gpt-4o-mini", "echo: What is 1 plus 8?", "ügé", "sk-", "gh", "eyJ", "k_live_", "-lf-",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=12), max_size=8))
def test_fast_paths_redact_exactly_like_every_pattern_on_every_string(parts: list[str]) -> None:
    text = "".join(parts)
    expected = text
    for _name, rx, repl in BUILTIN_PATTERNS:
        expected = re.sub(rx, repl, expected)
    gated = Redactor()
    combined = Redactor(patterns=list(BUILTIN_PATTERNS))  # not the built-in tuple: the combined search
    assert gated.text(text) == expected
    assert gated.text(text) == expected  # remembered
    assert combined.text(text) == expected


def test_custom_patterns_that_cannot_be_combined_still_apply() -> None:
    # The same group name twice cannot be one alternation: pattern by pattern, as before.
    custom = Redactor(patterns=[("a", r"tok-(?P<n>[0-9]+)", "[T]"), ("b", r"(?i)secret(?P<n>word)", "[W]")])
    assert custom.text("a tok-123 and SecretWord") == "a [T] and [W]"
