"""Credentials out of logs and records, for the LLM client: the names it has always imported.

The rule for which names are secret, the registry of known credential values and the scrubbing
of third-party log records live in :mod:`llmops.credentials` (one rule for the whole package).
"""

from __future__ import annotations

from llmops.credentials import SECRET_PARAMS, public_params
from llmops.credentials import register as register_log_secrets
from llmops.credentials import secret_values as secret_param_values

__all__ = ["SECRET_PARAMS", "public_params", "register_log_secrets", "secret_param_values"]
