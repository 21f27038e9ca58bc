"""Credentials out of logs and records: which call params are secret, and log-record scrubbing.

litellm and the OpenAI/Anthropic SDKs log requests at DEBUG, custom headers included. Every
client registers the credential values it may send; records of those libraries' loggers are
scrubbed of them when created, so no handler (pytest's, a CI log, basicConfig) ever sees them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

# Call params whose values are credentials: never stored, traced or logged.
SECRET_PARAMS = frozenset({"api_key", "headers", "extra_headers", "aws_secret_access_key",
                            "azure_ad_token", "vertex_credentials"})


def public_params(params: dict[str, Any]) -> dict[str, Any]:
    """Params with credentials removed (safe for traces, stores and reports)."""
    return {k: v for k, v in params.items() if k not in SECRET_PARAMS}


_THIRD_PARTY_LOGGERS = ("LiteLLM", "litellm", "openai", "anthropic", "httpx", "httpcore")
_MIN_SECRET_LEN = 8
_log_secrets: frozenset[str] = frozenset()
_log_lock = threading.Lock()


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        # "Bearer <token>": the token alone may be logged too.
        return {value, value.split()[-1]} if " " in value.strip() else {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def register_log_secrets(values: set[str] | frozenset[str]) -> None:
    """Scrub these values from every record of litellm's and the provider SDKs' loggers."""
    global _log_secrets
    new = {v for v in values if len(v) >= _MIN_SECRET_LEN} - _log_secrets
    if not new:
        return
    with _log_lock:
        if not _log_secrets:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                secrets = _log_secrets
                if secrets and record.name.startswith(_THIRD_PARTY_LOGGERS):
                    try:
                        text = record.getMessage()
                    except Exception:  # a malformed record is the logging module's to report
                        return record
                    scrubbed = text
                    for secret in secrets:
                        scrubbed = scrubbed.replace(secret, "[REDACTED]")
                    if scrubbed != text:
                        record.msg, record.args = scrubbed, ()
                return record

            logging.setLogRecordFactory(factory)
        _log_secrets = _log_secrets | new


def secret_param_values(params: dict[str, Any]) -> set[str]:
    """The credential values among call params (api_key, header values, ...)."""
    return set().union(*(_strings(v) for k, v in params.items() if k in SECRET_PARAMS)) if params else set()

