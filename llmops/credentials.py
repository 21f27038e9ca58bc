"""Credentials: which names are secret, which values are known secrets, and scrubbing both from text.

The one rule of the package for "is this a credential?":

- **By name** (:func:`is_secret_name`): call params (``api_key``, ``extra_headers``, ...), mapping
  keys (``authorization``, ``X-Gateway-Token``), environment variables (``OPENAI_API_KEY``) and
  baseline params all use it. Every value under a secret name is a credential, whatever it looks like.
- **By value** (:func:`register`, :func:`scrub`): every credential llmops learns of (provider key
  variables, alias and suite ``api_key`` and header values, passwords inside ``api_base`` URLs,
  the Langfuse secret key) is registered here, and :func:`scrub` replaces those exact values in
  any text. A provider that echoes a key in its error body is then scrubbed even when the key
  has no known shape.
- **By shape** (:data:`BUILTIN_PATTERNS`): the common key formats, bearer tokens, URL passwords
  and ``key=value`` secrets, for credentials llmops was never told about.

Error messages (every :class:`~llmops.errors.LLMOpsError`), third-party log records, traces and
the params written to manifests, plans and baselines go through this module. This is a leaf:
it imports only the standard library, so errors, config and the client can all use it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

REDACTED = "[REDACTED]"

# Call params whose whole value is a credential (or a mapping of them: every header value).
SECRET_PARAMS = frozenset({
    "api_key", "headers", "extra_headers", "default_headers", "aws_secret_access_key", "aws_session_token",
    "azure_ad_token", "vertex_credentials", "client_secret", "password", "token",
})

# Mapping keys whose whole value is a credential, whatever it looks like (traces, params, headers).
SECRET_KEYS = frozenset({
    "api_key", "apikey", "api-key", "x-api-key", "authorization", "proxy-authorization", "password",
    "passwd", "secret", "secret_key", "client_secret", "access_token", "refresh_token", "auth_token",
    "token", "aws_secret_access_key", "azure_ad_token", "cookie", "set-cookie",
})

# A name *ending* in one of these words (after ``_``, ``-`` or ``.``) is secret: ``OPENAI_API_KEY``,
# ``X-Gateway-Token``, ``db.password``. Anchored at the end so ``max_tokens`` or
# ``TOKENIZERS_PARALLELISM`` are not.
_SECRET_NAME = re.compile(
    r"(?:^|[_.])(?:api_?key|apikey|secret(?:_?key)?|secret_access_key|access_?key|token|password|passwd|pwd"
    r"|authorization|credentials?|cookie|ad_token|session_token)$")


def is_secret_name(name: str) -> bool:
    """Whether a param, header, mapping key or environment variable name holds a credential.

    Args:
        name: Any name (case and ``-``/``_`` are ignored).

    Returns:
        True for ``api_key``, ``extra_headers``, ``Authorization``, ``X-Gateway-Token``,
        ``OPENAI_API_KEY``, ``LANGFUSE_SECRET_KEY``, ...; False for ``max_tokens``, ``api_base``.
    """
    low = name.strip().lower()
    if low in SECRET_PARAMS or low in SECRET_KEYS:
        return True
    return _SECRET_NAME.search(low.replace("-", "_")) is not None


# ---- by shape -----------------------------------------------------------------------------------
# (name, pattern, replacement). Order matters: specific key formats before the generic rules.
BUILTIN_PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", REDACTED),
    ("url_password", r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/?#@]+):[^\s@/]+@", rf"\1:{REDACTED}@"),
    ("auth_header", r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:basic|bearer|token|digest)\s+)?"
                    r"[A-Za-z0-9\-._~+/]{6,}=*", rf"\1{REDACTED}"),
    ("bearer", r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/]{8,}=*", rf"\1\2{REDACTED}"),
    ("openai_anthropic", r"\bsk-(?:proj-|ant-(?:api\d{2}-)?|svcacct-)?[A-Za-z0-9_\-]{16,}", REDACTED),
    ("langfuse", r"\b(?:pk|sk)-lf-[A-Za-z0-9\-]{8,}", REDACTED),
    ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", REDACTED),
    ("github", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})", REDACTED),
    ("slack", r"\bxox[abprs]-[A-Za-z0-9\-]{10,}", REDACTED),
    ("google", r"\bAIza[0-9A-Za-z\-_]{30,}", REDACTED),
    ("huggingface", r"\bhf_[A-Za-z0-9]{30,}", REDACTED),
    ("stripe", r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}", REDACTED),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", REDACTED),
    ("key_value", r"(?i)\b((?:api[_-]?key|apikey|secret(?:[_-]?key)?|password|passwd|pwd|access[_-]?token|"
                  r"auth[_-]?token|client[_-]?secret)\"?'?)(\s*[:=]\s*)([\"']?)[^\s\"'&,;]{4,}",
     rf"\1\2\3{REDACTED}"),
)
_KEY_WORDS = ("key", "secret", "pass", "pwd", "token")
_SHAPES = [(re.compile(rx), repl) for _name, rx, repl in BUILTIN_PATTERNS]


def may_hold_builtin_secret(text: str) -> bool:
    """False only when no built-in pattern can match: each test is a substring its pattern needs."""
    if ("sk-" in text or "-lf-" in text or "eyJ" in text or "AIza" in text or "hf_" in text or "gh" in text
            or "xox" in text or "AKIA" in text or "ASIA" in text or "k_live_" in text or "k_test_" in text
            or "PRIVATE KEY" in text or ("://" in text and "@" in text)):
        return True
    lower = text.lower()
    if "bearer" in lower or "authorization" in lower:
        return True
    return ("=" in text or ":" in text) and any(word in lower for word in _KEY_WORDS)


def scrub_shapes(text: str) -> str:
    """``text`` with every credential-shaped substring (the built-in patterns) replaced."""
    if not may_hold_builtin_secret(text):
        return text
    for rx, repl in _SHAPES:
        text = rx.sub(repl, text)
    return text


# ---- by value -----------------------------------------------------------------------------------
# Shorter values are not scrubbed by value: "true", a port number or a 4-letter password would
# blank unrelated text everywhere. Such values are still removed by name (params) and shape (URLs).
MIN_SECRET_LEN = 8
_URL_USERINFO = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://([^\s:/?#@]*):([^\s@/]+)@")
_lock = threading.Lock()
_known: frozenset[str] = frozenset()
_known_rx: re.Pattern[str] | None = None
# The values as JSON writes them (``json.dumps(v)[1:-1]``), for the trace redactor's JSON fast path.
_known_json: tuple[str, ...] = ()


def url_passwords(text: str) -> set[str]:
    """Passwords inside ``scheme://user:password@host`` URLs in ``text`` (raw and percent-decoded)."""
    out: set[str] = set()
    if "://" not in text or "@" not in text:
        return out
    for m in _URL_USERINFO.finditer(text):
        out.update({m.group(2), unquote(m.group(2))})
    return out


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        # "Bearer <token>": the token alone may be logged or echoed too.
        return {value, value.split()[-1]} if " " in value.strip() else {value}
    if isinstance(value, Mapping):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def secret_values(params: Mapping[str, Any] | None) -> set[str]:
    """The credential values in ``params``: every string under a secret name, and URL passwords.

    Args:
        params: Call params, alias params, suite params or headers (nested mappings are walked).
    """
    out: set[str] = set()
    for key, value in (params or {}).items():
        if is_secret_name(str(key)):
            out |= _strings(value)
        elif isinstance(value, str):
            out |= url_passwords(value)
        elif isinstance(value, Mapping):
            out |= secret_values(value)
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, Mapping):
                    out |= secret_values(item)
                elif isinstance(item, str):
                    out |= url_passwords(item)
    return out


# Set by every POSIX shell: the current and the previous directory, not passwords (``PWD`` ends
# in "pwd"). Scrubbed, every error naming a file under the project said "[REDACTED]/prompts/...".
_SHELL_DIRECTORIES = frozenset({"PWD", "OLDPWD"})


def env_secret_values(environ: Mapping[str, str]) -> set[str]:
    """Values of credential-named environment variables (``*_API_KEY``, ``*_TOKEN``, ...) and URL passwords."""
    out: set[str] = set()
    for name, value in environ.items():
        if not value or name.upper() in _SHELL_DIRECTORIES:
            continue
        if is_secret_name(name):
            out.add(value)
        elif "://" in value:
            out |= url_passwords(value)
    return out


def register(values: Iterable[str]) -> None:
    """Make these credential values known: :func:`scrub` removes them from any text from now on.

    Values shorter than :data:`MIN_SECRET_LEN` are ignored (see there). Registering is cheap and
    idempotent; the set only grows for the life of the process.
    """
    global _known, _known_rx, _known_json
    new = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LEN} - _known
    if not new:
        return
    with _lock:
        known = _known | new
        # Longest first: a key that contains another known key is replaced whole.
        ordered = sorted(known, key=lambda v: (-len(v), v))
        _known_rx = re.compile("|".join(re.escape(v) for v in ordered))
        _known_json = tuple(json.dumps(v, ensure_ascii=False)[1:-1] for v in ordered)
        _known = frozenset(known)
    _install_log_scrubber()


def register_params(params: Mapping[str, Any] | None) -> None:
    """Register the credential values found in ``params`` (see :func:`secret_values`)."""
    if params:
        register(secret_values(params))


def known_values() -> frozenset[str]:
    """Every credential value registered so far."""
    return _known


def scrub_known(text: str) -> str:
    """``text`` with every registered credential value replaced by ``[REDACTED]``."""
    rx = _known_rx
    return text if rx is None else rx.sub(REDACTED, text)


def json_may_hold_known(text: str) -> bool:
    """Whether a registered value may be inside a string of the JSON ``text`` (``ensure_ascii=False``)."""
    return any(v in text for v in _known_json)


def scrub(text: str) -> str:
    """``text`` with registered credential values and credential-shaped substrings replaced.

    Use it on anything that is stored, printed or rendered and may quote a provider, a URL or a
    configuration value: error messages, log records, notes.
    """
    if not text:
        return text
    return scrub_shapes(scrub_known(text))


def public_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Params safe to store, print and trace: secret names dropped (at any depth), URL passwords scrubbed.

    Args:
        params: Call, alias or suite params.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        if is_secret_name(str(key)):
            continue
        out[key] = _public(value)
    return out


def _public(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value) if "://" in value else value
    if isinstance(value, Mapping):
        return public_params(value)
    if isinstance(value, list | tuple):
        return [_public(v) for v in value]
    return value


# ---- credentials never reach a log line ---------------------------------------------------------
# litellm and the OpenAI/Anthropic SDKs log requests at DEBUG, custom headers and the api_base
# (with its password) included. Records of those libraries' loggers are scrubbed of every known
# value when created, so no handler (pytest's, a CI log, basicConfig) ever sees one.
THIRD_PARTY_LOGGERS = ("LiteLLM", "litellm", "openai", "anthropic", "httpx", "httpcore")
_factory_installed = False


def _install_log_scrubber() -> None:
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            rx = _known_rx
            if rx is not None and record.name.startswith(THIRD_PARTY_LOGGERS):
                try:
                    text = record.getMessage()
                except Exception:  # a malformed record is the logging module's to report
                    return record
                scrubbed = scrub_shapes(rx.sub(REDACTED, text))
                if scrubbed != text:
                    record.msg, record.args = scrubbed, ()
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True
