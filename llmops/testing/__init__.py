"""Test doubles for llmops and its users: a local HTTP server that speaks like real providers.

Nothing here is imported by the library itself; tests and benchmarks import it explicitly.
"""

from llmops.testing.provider_server import (
    Fault,
    FaultKind,
    ProviderServer,
    RecordedRequest,
    Reply,
    ServerStats,
    ToolUse,
)

__all__ = ["Fault", "FaultKind", "ProviderServer", "RecordedRequest", "Reply", "ServerStats", "ToolUse"]
