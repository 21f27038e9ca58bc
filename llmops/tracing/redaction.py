"""Redaction: secrets are removed from every span before it is stored or leaves the process.

Built-in patterns cover API keys of the common providers, bearer tokens, passwords inside URLs
and ``key=value`` secrets; values under secret-looking keys (``api_key``, ``authorization``,
``password``) are replaced whole. A user hook runs after the built-ins on every string.

A failing hook never lets the original text through: the value becomes ``[REDACTION FAILED]``
(fail closed), because a trace with a hole is better than a leaked credential.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmops import credentials
from llmops.credentials import BUILTIN_PATTERNS, REDACTED, SECRET_KEYS
from llmops.credentials import may_hold_builtin_secret as _may_hold_builtin_secret
from llmops.tracing.model import ScoreRecord, SpanRecord, TraceAttributes, evolve

FAILED = "[REDACTION FAILED]"
RedactHook = Callable[[str], str]

_MEMO_MAX_CHARS = 2000
_MEMO_MAX_ITEMS = 20_000


def _scoped(rx: str) -> str:
    """``(?i)body`` as ``(?i:body)``, so that the pattern can be one branch of an alternation."""
    m = re.match(r"\(\?([aiLmsux]+)\)", rx)
    return f"(?{m.group(1)}:{rx[m.end():]})" if m else rx


# Substrings of the generic patterns (key_value, auth_header, bearer) and of the secret keys,
# casefolded: a JSON text holds one of them wherever those rules could apply. Unlike the per-string
# gate, there is no ":"/"=" condition: every JSON text has colons.
_JSON_WORDS = ("key", "secret", "passw", "pwd", "auth", "access", "bearer")


def _json_may_hold_builtin_secret(text: str, folded: str) -> bool:
    """False only when no built-in pattern can match inside any string value of the JSON ``text``.

    ``folded`` is ``text.casefold()`` (casefold, not lower: case-insensitive regexes also equate
    e.g. the long s with "s"). Every test is a substring that a match needs, made only of
    characters JSON never escapes, so it is in the JSON whenever it is in one of the values.
    Prefixes are the exact ones of the case-sensitive patterns (``ghp_`` rather than ``gh``,
    which common words contain).
    """
    # Shared prefixes are tested once ("gh" before "ghp_", ...); "PRIVATE KEY" is in "key" below.
    return ("sk-" in text or "-lf-" in text or "eyJ" in text or "AIza" in text or "hf_" in text
            or ("gh" in text and ("ghp_" in text or "gho_" in text or "ghu_" in text or "ghs_" in text
                                  or "ghr_" in text or "github_pat_" in text))
            or "xox" in text or "AKIA" in text or "ASIA" in text
            or ("k_" in text and ("k_live_" in text or "k_test_" in text)) or _json_may_hold_url_password(text)
            # _JSON_WORDS, spelled out: a generator costs more than these scans.
            or "key" in folded or "secret" in folded or "passw" in folded or "pwd" in folded or "auth" in folded
            or "access" in folded or "bearer" in folded)


def _json_may_hold_url_password(text: str) -> bool:
    """Whether a ``scheme://user:password@`` can be inside a string of the JSON ``text``.

    Such a match has no ``/``, no whitespace and no other ``@`` between ``://`` and its ``@``, and
    JSON escaping adds none of those; a record with a URL (``api_base``) and an ``@`` elsewhere
    (``prompt@2``) is then still clean.
    """
    start = text.find("://")
    while start != -1:
        at = text.find("@", start)
        if at == -1:
            return False
        between = text[start + 3:at]
        if "/" not in between and not any(c.isspace() for c in between):
            return True
        start = text.find("://", start + 3)
    return False


class Redactor:
    """Removes secrets from strings and from nested JSON-like values.

    Args:
        hook: Optional ``str -> str`` run after the built-in patterns on every string.
        patterns: Override the built-in ``(name, regex, replacement)`` patterns.
        secret_keys: Override the mapping keys whose values are always replaced.
    """

    def __init__(self, hook: RedactHook | None = None, *,
                 patterns: Sequence[tuple[str, str, str]] = BUILTIN_PATTERNS,
                 secret_keys: frozenset[str] = SECRET_KEYS) -> None:
        self.hook = hook
        self._patterns = [(name, re.compile(rx), repl) for name, rx, repl in patterns]
        # One search that matches wherever any pattern would: most strings hold no secret and
        # cost one scan instead of one per pattern.
        # Built-in patterns: cheap substring tests that every match needs. Custom patterns: one
        # search that matches wherever any of them would. Either way, most strings hold no
        # secret and cost one scan instead of one per pattern.
        self._gated = patterns is BUILTIN_PATTERNS
        try:
            self._any: re.Pattern[str] | None = re.compile(
                "|".join(f"(?:{_scoped(rx)})" for _name, rx, _repl in patterns) or r"(?!)")
        except re.error:  # a custom pattern that cannot be a branch: scan pattern by pattern
            self._any = None
        # The built-in patterns are pure functions of the text; manifests, model names and prompt
        # refs recur in every span of a run, so their results are remembered (bounded).
        self._seen: dict[str, str] = {}
        self._secret_keys = secret_keys
        # The JSON fast path (see `clean_json`) is exact for the built-in patterns and for secret
        # keys that JSON writes verbatim; anything else always takes the full walk.
        self._json_fast = self._gated and all(
            k == k.casefold() and '"' not in k and "\\" not in k and all(c >= " " for c in k) for k in secret_keys)
        # Secret keys the substring gate does not already catch ("token", "cookie", ...), quoted as
        # JSON keys are, and the endings they share (one scan for "token", "refresh_token", ...).
        self._json_keys = tuple(f'"{k}"' for k in sorted(secret_keys) if not any(w in k for w in _JSON_WORDS))
        self._json_key_ends = tuple(sorted({k[-6:] for k in self._json_keys}))
        self.failures = 0

    def _builtin(self, value: str) -> str:
        cached = self._seen.get(value)
        if cached is not None:
            return cached
        out = value
        if (_may_hold_builtin_secret(out) if self._gated
                else self._any is None or self._any.search(out) is not None):
            for _name, rx, repl in self._patterns:
                out = rx.sub(repl, out)
        if len(value) <= _MEMO_MAX_CHARS:
            if len(self._seen) >= _MEMO_MAX_ITEMS:
                self._seen.clear()
            self._seen[value] = out
        return out

    def text(self, value: str) -> str:
        """Redact one string: known credential values (see :mod:`llmops.credentials`), then the patterns."""
        out = self._builtin(credentials.scrub_known(value))
        if self.hook is not None:
            try:
                hooked = self.hook(out)
            except Exception:  # a user hook must not leak or crash the worker: fail closed
                self.failures += 1
                return FAILED
            if not isinstance(hooked, str):
                self.failures += 1
                return FAILED
            out = hooked
        return out

    def clean_json(self, text: str) -> bool:
        """Whether redacting the values serialized in ``text`` would change nothing.

        ``text`` is ``json.dumps`` of the values (``ensure_ascii=False``). True means: no user hook
        is set, no built-in pattern can match any string in it (a few substring tests over the
        whole text instead of a walk over every value) and no key is a secret key; the caller may
        then store and export the values as they are. False means "walk them": most records
        hold no secret, and this check costs a small fraction of :meth:`value`.
        """
        if self.hook is not None or not self._json_fast or credentials.json_may_hold_known(text):
            return False
        folded = text.casefold()
        if _json_may_hold_builtin_secret(text, folded):
            return False
        # A secret key stands quoted in the JSON (a quoted value alike only costs the full walk).
        # Most records hold none of the shared endings: the keys themselves are rarely scanned.
        return not any(end in folded for end in self._json_key_ends) or not any(
            k in folded for k in self._json_keys)

    def value(self, value: Any, _depth: int = 0) -> Any:
        """Redact a JSON-like value (dicts, lists, tuples, strings; other scalars pass through)."""
        if isinstance(value, str):
            return self.text(value)
        if _depth > 32:  # pathological nesting: drop rather than recurse forever
            return "[TRUNCATED]"
        if isinstance(value, Mapping):
            return {str(k): (REDACTED if str(k).lower() in self._secret_keys and v is not None
                             else self.value(v, _depth + 1))
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v, _depth + 1) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        # Anything else (a Message, a custom object) is redacted through its text form.
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            try:
                return self.value(to_dict(), _depth + 1)
            except Exception:
                pass
        return self.text(str(value))

    def attributes(self, attrs: TraceAttributes) -> TraceAttributes:
        """Redact trace attributes (ids and tags are user text too)."""
        def opt(s: str | None) -> str | None:
            return None if s is None else self.text(s)

        return TraceAttributes(user_id=opt(attrs.user_id), session_id=opt(attrs.session_id),
                               tags=tuple(self.text(t) for t in attrs.tags),
                               environment=opt(attrs.environment), release=opt(attrs.release),
                               trace_name=opt(attrs.trace_name), metadata=self.value(attrs.metadata))

    def span(self, span: SpanRecord) -> SpanRecord:
        """A copy of ``span`` with every user-controlled field redacted."""
        return evolve(
            span,
            name=self.text(span.name),
            error=None if span.error is None else self.text(span.error),
            input=self.value(span.input),
            output=self.value(span.output),
            metadata=self.value(span.metadata),
            params=self.value(span.params),
            attributes=self.attributes(span.attributes),
        )

    def score(self, score: ScoreRecord) -> ScoreRecord:
        """A copy of ``score`` with its comment and metadata redacted."""
        return evolve(score, comment=None if score.comment is None else self.text(score.comment),
                                   metadata=self.value(score.metadata))
