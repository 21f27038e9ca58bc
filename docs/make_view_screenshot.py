"""Regenerate docs/view-run.png: a small two-prompt, two-model run served by `llmops view`, in chromium.

python docs/make_view_screenshot.py        # needs Debian's chromium and playwright (the dev extra)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITE = """\
name: support
prompts: [rag_answer@1, rag_answer@2]
models: [fake/small, fake/large]
evaluators:
  - contains: {name: mentions_answer}
  - length: {name: concise, max: 80}
cases:
""" + "".join(f"  - {{id: {cid}, inputs: {{question: \"{q}\"}}, expected: \"{e}\"}}\n" for cid, q, e in [
    ("refund-window", "How long do I have to ask for a refund?", "30 days"),
    ("reset-password", "How do I reset my password?", "Settings"),
    ("shipping-eu", "Do you ship to Germany?", "yes"),
    ("cancel-plan", "Can I cancel any time?", "any time"),
    ("invoice-vat", "Does the invoice show VAT?", "VAT"),
    ("support-hours", "When is support open?", "9"),
])
ANSWERS = {
    "refund-window": ("You have 30 days to ask for a refund.", "Refunds are possible within 30 days of delivery."),
    "reset-password": ("Open Settings, then Security, then Reset password.", "Go to Settings > Security."),
    "shipping-eu": ("Yes, we ship to every EU country including Germany.", "We do not ship there."),
    "cancel-plan": ("You can cancel any time from the billing page.", "Plans renew every month until cancelled."),
    "invoice-vat": ("Invoices list VAT on a separate line.", "Yes, VAT is shown on every invoice."),
    "support-hours": ("Support is open 9:00-18:00 CET on weekdays.", "Our team answers within one day."),
}


def main() -> None:
    """Run the demo suite, serve it and screenshot its run page."""
    from llmops.config import load_settings
    from llmops.llm import fake
    from llmops.llm.client import LLMClient
    from llmops.runner.engine import run_suite, run_tracer
    from llmops.tracing.tracer import reset_tracing

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0"\n[tool.llmops]\n'
                                             'default_model = "fake/small"\n', encoding="utf-8")
        shutil.copytree(REPO / "prompts", root / "prompts")
        (root / "evalsets").mkdir()
        (root / "evalsets" / "support.yaml").write_text(SUITE, encoding="utf-8")

        def responder(index: int):  # type: ignore[no-untyped-def]
            def answer(messages, params):  # type: ignore[no-untyped-def]
                text = messages[-1]["content"]
                case = next(c for c in ANSWERS if SUITE.split(c, 1)[1].split('"', 2)[1] in text)
                return ANSWERS[case][index]
            return answer

        fake.script("fake/small", responder=responder(0))
        fake.script("fake/large", responder=responder(1))
        settings = load_settings(root)
        run_suite(root / "evalsets" / "support.yaml", settings=settings, client=LLMClient(settings),
                  progress=False, cache="off", tracer=run_tracer(settings))
        reset_tracing()
        proc = subprocess.Popen([sys.executable, "-m", "llmops", "view", "--port", "0"], cwd=root,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split(" at ", 1)[1].strip()
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.goto(url + "runs")
                page.locator("table.runs tbody tr a").first.click()
                page.wait_for_url("**/runs/**")
                for key in "jpjjf":
                    page.keyboard.press(key)
                    page.wait_for_timeout(300)
                page.keyboard.press("j")
                page.wait_for_timeout(2800)  # the "marked" notice fades
                page.screenshot(path=str(REPO / "docs" / "view-run.png"), full_page=True)
                browser.close()
        finally:
            proc.terminate()
            proc.wait()
    print("wrote docs/view-run.png")


if __name__ == "__main__":
    main()
