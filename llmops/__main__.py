"""``python -m llmops``."""

from llmops.cli import entry

if __name__ == "__main__":
    entry()
