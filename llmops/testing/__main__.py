"""``python -m llmops.testing``: serve the provider double in its own process (for benchmarks)."""

from llmops.testing.provider_server import main

if __name__ == "__main__":
    raise SystemExit(main())
