"""Reports: terminal tables (and, as they arrive, Markdown, HTML and JSON)."""
