"""The llmops version: a leaf module, so code that records it never imports the package root."""

__version__ = "0.1.0"
