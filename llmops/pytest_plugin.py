"""pytest plugin: suite files become test items, the suite gate runs at the end of the session.

Thin by design: collection, options, fixtures and reporting. The work is done by the library
(:mod:`llmops.runner`, :mod:`llmops.regression`). The plugin is inactive until used: it only
looks at ``.yaml`` files inside the project's evalsets directory, and imports nothing heavy
before such a file is collected.

- ``pytest evalsets/`` collects one item per case × prompt version × model
  (``evalsets/qa.yaml::capital-of-france[local/smollm2]``), so ``-k``, ``-x`` and ``--lf`` work.
- The items of one suite file run together, concurrently, on first use; each stored in one run.
- At the end, each suite's gate (absolute gates and baseline comparison) decides the exit status.
- Under pytest-xdist every worker stores its own run; the controller merges them into one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from llmops.config import Settings
    from llmops.evalsets.loader import LoadedSuite
    from llmops.llm.client import LLMClient
    from llmops.regression import Verdict
    from llmops.runner.engine import Runner
    from llmops.runner.results import Manifest, RunResult, UnitResult
    from llmops.runner.store import RunStore

_STATE = pytest.StashKey["_State"]()


def _worker(config: pytest.Config) -> str | None:
    """The xdist worker id (``gw0``...) in a worker process, else None."""
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else None


@dataclass
class _SuiteRun:
    path: str
    name: str
    run_id: str | None = None
    results: dict[tuple[str, str, str], list[UnitResult]] = field(default_factory=dict)
    complete: bool = True
    error: str | None = None  # why the run could not start (a damaged cache, a missing key, ...)


@dataclass
class _State:
    settings: Settings | None = None
    runs: dict[str, _SuiteRun] = field(default_factory=dict)
    worker_runs: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[tuple[str, RunResult, Verdict]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Failed test reports: suite items per suite file, and everything else.
    item_failures: dict[str, int] = field(default_factory=dict)
    other_failures: int = 0


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--llmops-*`` options."""
    from llmops.config import CACHE_MODES

    group = parser.getgroup("llmops", "llmops prompt regression suites")
    group.addoption("--llmops-model", action="append", default=None, metavar="MODEL",
                    help="run suites on this model instead of theirs (repeatable)")
    group.addoption("--llmops-repeat", type=int, default=None, metavar="K", help="repeats per case")
    group.addoption("--llmops-cache", default=None, choices=CACHE_MODES,
                    help="response cache mode (read-only = replay without provider calls)")
    group.addoption("--llmops-update-baseline", action="store_true", default=False,
                    help="write each suite's run as its new baseline")
    group.addoption("--llmops-store", default=None, metavar="FILE", help="run store (default: store_path)")
    group.addoption("--llmops-no-gate", action="store_true", default=False,
                    help="report items only; skip the suite gates at the end")
    group.addoption("--llmops-strict", action="store_true", default=False,
                    help="fail the session on any failing suite item, even within a passing gate")


def pytest_configure(config: pytest.Config) -> None:
    """Create the per-session state and the marker."""
    config.stash[_STATE] = _State()
    _CONFIG["config"] = config
    config.addinivalue_line("markers", "llmops: an llmops suite item")


def _settings(config: pytest.Config) -> Settings:
    state = config.stash[_STATE]
    if state.settings is None:
        from llmops.config import load_settings

        overrides = {"cache": config.getoption("llmops_cache")}
        state.settings = load_settings(config.rootpath, overrides=overrides)
    return state.settings


def _is_suite(file_path: Path, config: pytest.Config) -> bool:
    if file_path.suffix not in (".yaml", ".yml"):
        return False
    settings = _settings(config)
    try:
        relative = file_path.resolve().relative_to(settings.evalsets_path.resolve())
    except ValueError:
        return False
    return "baselines" not in relative.parts[:-1]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect suite files inside the evalsets directory."""
    if _is_suite(file_path, parent.config):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class SuiteError(Exception):
    """A suite file that cannot be collected (message already readable)."""


class SuiteFile(pytest.File):
    """One suite YAML file."""

    loaded: LoadedSuite
    item_count: int = 0
    _runner: Runner
    _manifest: Manifest

    def collect(self) -> Iterator[SuiteItem]:
        """One item per case × prompt × model."""
        from llmops.errors import LLMOpsError
        from llmops.evalsets.loader import load_suite

        try:
            self.loaded = load_suite(self.path)
        except LLMOpsError as err:
            raise SuiteError(str(err)) from None
        settings = _settings(self.config)
        models = self.config.getoption("llmops_model") or self.loaded.suite.models or [settings.default_model]
        prompts = self.loaded.suite.prompts
        for case in self.loaded.cases:
            for prompt in prompts:
                for model in models:
                    param = model if len(prompts) == 1 else f"{prompt}-{model}"
                    item = SuiteItem.from_parent(self, name=f"{case.id}[{param}]", case_id=case.id,
                                                 prompt=prompt, model=model)
                    line = self.loaded.case_lines.get(case.id)
                    item.line = line[1] - 1 if line and line[0] == str(self.path) else 0
                    self.item_count += 1
                    yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """Readable collection errors (file, line, key, hint)."""
        if isinstance(excinfo.value, SuiteError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def results_for(self, item: SuiteItem) -> list[UnitResult]:
        """This item's results (running them on first use).

        Without xdist, every selected item of the file runs together on first use (concurrently);
        an xdist worker runs just the items it is handed, one by one, into one run per worker
        (the controller merges the workers' runs).
        """
        state = self.config.stash[_STATE]
        key = str(self.path)
        suite_run = state.runs.get(key)
        if suite_run is None:
            from llmops.errors import LLMOpsError

            try:
                suite_run = self._start()
            except LLMOpsError as err:  # prepared once: every item reports the one readable cause
                suite_run = _SuiteRun(path=key, name=self.loaded.name, error=str(err))
                state.notes.append(f"{self.nodeid}: the suite could not start: {err}")
            state.runs[key] = suite_run
        if suite_run.error is not None:
            raise SuiteError(f"the suite could not start: {suite_run.error}")
        wanted = (item.case_id, item.prompt, item.model)
        if wanted not in suite_run.results:
            if _worker(self.config):
                keys = {wanted}
            else:
                keys = {(i.case_id, i.prompt, i.model) for i in self.session.items
                        if isinstance(i, SuiteItem) and i.parent is self}
            self._execute(suite_run, keys)
        return suite_run.results.get(wanted, [])

    def _start(self) -> _SuiteRun:
        from llmops.llm.client import LLMClient
        from llmops.runner.engine import new_run_id, run_tracer
        from llmops.runner.prepare import prepare_run

        settings = _settings(self.config)
        selected = [i for i in self.session.items if isinstance(i, SuiteItem) and i.parent is self]
        worker = _worker(self.config)
        # The same preparation as `llmops run` (the cache's integrity check included); the
        # items then run a selection at a time (`only`), all into this one run.
        prepared = prepare_run(self.loaded, settings=settings, client=LLMClient(settings), store=_store(self.config),
                               models=self.config.getoption("llmops_model"),
                               repeat=self.config.getoption("llmops_repeat"), progress=False,
                               tracer=run_tracer(settings), only=set(),
                               run_id=new_run_id() + (f"-{worker}" if worker else ""))
        self._runner, self._manifest = prepared.runner, prepared.manifest
        # Under xdist each worker holds a share of the items; the merge makes the whole.
        complete = len(selected) == self.item_count or worker is not None
        return _SuiteRun(path=str(self.path), name=self.loaded.name, run_id=prepared.run_id, complete=complete)

    def _execute(self, suite_run: _SuiteRun, keys: set[tuple[str, str, str]]) -> None:
        from llmops._async import run_sync

        runner = self._runner
        runner.only = keys
        if suite_run.run_id is None:  # _start always sets it
            raise RuntimeError("suite run without an id")
        done = runner.store.done_units(suite_run.run_id)
        run = run_sync(runner.execute(suite_run.run_id, self._manifest, done))
        self._manifest = run.manifest
        suite_run.results.clear()
        for r in run.results:
            suite_run.results.setdefault((r.case_id, r.prompt, r.model), []).append(r)


def _store(config: pytest.Config) -> RunStore:
    from llmops.runner.store import RunStore

    settings = _settings(config)
    option = config.getoption("llmops_store")
    return RunStore(Path(option) if option else settings.path(settings.store_path))


class SuiteItem(pytest.Item):
    """One case × prompt version × model (all its repeats)."""

    def __init__(self, *, case_id: str, prompt: str, model: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case_id, self.prompt, self.model = case_id, prompt, model
        self.line = 0
        self.add_marker("llmops")

    def runtest(self) -> None:
        """Run (or fetch) this item's results; fail with every evaluator's verdict."""
        parent = self.parent
        assert isinstance(parent, SuiteFile)
        results = parent.results_for(self)
        for r in results:
            self.user_properties.extend(_properties(r))
        if not results:
            raise ItemFailure(self, [], "no result was produced for this item")
        bad = [r for r in results if r.status in ("fail", "error")]
        if bad:
            raise ItemFailure(self, results)
        if all(r.status == "unmeasured" for r in results):
            reasons = "; ".join(s.reason for r in results for s in r.scores if s.status == "unmeasured")
            pytest.skip(f"unmeasured: {reasons}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The output, each evaluator's score, threshold and reason."""
        if isinstance(excinfo.value, ItemFailure):
            return excinfo.value.explain()
        if isinstance(excinfo.value, SuiteError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        """Location shown by pytest: the case's line in the suite file."""
        return self.path, self.line, f"{self.case_id} [{self.prompt} × {self.model}]"


def _properties(r: UnitResult) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = [
        ("llmops.model", r.resolved_model or r.model), ("llmops.prompt", r.prompt),
        ("llmops.prompt_hash", r.prompt_hash[:12]), ("llmops.repeat", r.repeat), ("llmops.status", r.status),
        ("llmops.cost_usd", round(r.cost_usd + r.judge_cost_usd, 8)),
        ("llmops.latency_s", None if r.latency_s is None else round(r.latency_s, 4)),
        ("llmops.cached", r.cached)]
    for s in r.scores:
        props.append((f"llmops.score.{s.name}", s.value if s.value is not None else s.status))
    return props


class ItemFailure(Exception):
    """A suite item that failed; renders the evidence."""

    def __init__(self, item: SuiteItem, results: list[UnitResult], message: str = "") -> None:
        super().__init__(message or f"{item.case_id} failed")
        self.item, self.results, self.message = item, results, message

    def explain(self) -> str:
        """Multi-line explanation (model text with its control characters shown escaped)."""
        from llmops.reports.terminal import printable

        lines = [f"{self.item.case_id} [{self.item.prompt} × {self.item.model}]"]
        if self.message:
            lines.append(self.message)
        for r in self.results:
            head = f"repeat {r.repeat}: {r.status.upper()}"
            if r.cached:
                head += " (cached response)"
            lines.append(head)
            if r.error:
                lines.append(f"  error: {printable(r.error)}")
                continue
            lines.append("  output: " + printable(r.output or "").replace("\n", "\n          "))
            for s in r.scores:
                value = "—" if s.value is None else f"{s.value:.2f}"
                threshold = "" if s.threshold is None else f" (threshold {s.threshold:g})"
                lines.append(f"  {s.name}: {s.status} {value}{threshold} — {printable(s.reason)}")
        return "\n".join(lines)


# ---- end of session: merge worker runs, gate each suite ----------------------------------------

def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: collect the runs each worker stored."""
    output = getattr(node, "workeroutput", {}) or {}
    node.config.stash[_STATE].worker_runs.extend(output.get("llmops_runs", []))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count failures: of suite items per suite file (the gate decides them), and of anything else."""
    if not report.failed:
        return
    config = _CONFIG.get("config")
    if config is None:
        return
    state = config.stash[_STATE]
    if "llmops" in report.keywords and report.when == "call":
        path = str((config.rootpath / report.nodeid.split("::", 1)[0]).resolve())
        state.item_failures[path] = state.item_failures.get(path, 0) + 1
    else:
        state.other_failures += 1


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Gate every suite that ran; the session fails exactly when a gate fails.

    Suite items that fail within a passing gate are reported (as failed items, and in the
    summary) but do not fail the session, unless ``--llmops-strict``; any other failure still
    does, and so does a gate that fails or cannot be computed.
    """
    config = session.config
    state = config.stash[_STATE]
    if hasattr(config, "workerinput"):  # an xdist worker: hand the runs to the controller
        config.workeroutput["llmops_runs"] = [  # type: ignore[attr-defined]
            {"path": r.path, "name": r.name, "run_id": r.run_id, "complete": r.complete}
            for r in state.runs.values() if r.run_id]
        return
    runs = [{"path": r.path, "name": r.name, "run_id": r.run_id, "complete": r.complete}
            for r in state.runs.values() if r.run_id] + state.worker_runs
    if not runs or config.getoption("llmops_no_gate"):
        return
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_suite.setdefault(r["path"], []).append(r)
    failed = False
    for path, parts in by_suite.items():
        try:
            run, verdict = _gate(config, path, parts)
        except Exception as exc:  # the gate must report, never crash the session
            state.notes.append(f"{path}: gate could not be computed: {exc}")
            failed = True
            continue
        state.verdicts.append((path, run, verdict))
        failed = failed or not verdict.passed
        _step_summary(run, verdict)
    if failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    gated = {str(Path(p).resolve()) for p, _, v in state.verdicts if v.passed}
    within = sum(n for p, n in state.item_failures.items() if p in gated)
    outside = sum(n for p, n in state.item_failures.items() if p not in gated)
    if within and not failed and not outside and not state.other_failures \
            and not config.getoption("llmops_strict") and session.exitstatus == pytest.ExitCode.TESTS_FAILED:
        session.exitstatus = pytest.ExitCode.OK
        state.notes.append(f"{within} suite item(s) failed within passing gates: reported above, not failing "
                           "the session (--llmops-strict fails on them)")


def _gate(config: pytest.Config, path: str, parts: list[dict[str, Any]]) -> tuple[RunResult, Verdict]:
    from llmops.evalsets.loader import load_suite
    from llmops.gate import judge
    from llmops.runner.merge import merge_runs

    store = _store(config)
    if len(parts) == 1:
        run = store.load(parts[0]["run_id"])
    else:  # pytest-xdist: one run per worker, merged into one run to gate on
        run = merge_runs([(store.path, p["run_id"]) for p in parts], store)
    outcome = judge(run, load_suite(path), settings=_settings(config),
                    update_baseline=config.getoption("llmops_update_baseline"),
                    complete=all(p["complete"] for p in parts))
    return outcome.run, outcome.verdict


def _step_summary(run: RunResult, verdict: Verdict) -> None:
    from llmops.config import env_flag

    target = env_flag("GITHUB_STEP_SUMMARY")
    if not target:
        return
    from llmops.reports.markdown import render_markdown

    try:
        with open(target, "a", encoding="utf-8") as f:
            f.write(render_markdown(run, verdict=verdict) + "\n")
    except OSError:
        pass  # a summary is a courtesy; never fail the session over it


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print each suite's gate verdict."""
    state = config.stash.get(_STATE, None)
    if state is None or not (state.verdicts or state.notes):
        return
    terminalreporter.section("llmops suite gates")
    for path, run, verdict in state.verdicts:
        word = "PASSED" if verdict.passed else "FAILED"
        try:
            shown = str(Path(path).relative_to(config.rootpath))
        except ValueError:
            shown = path
        terminalreporter.write_line(f"{word} {shown} (run {run.run_id}, {len(run.results)} units)",
                                    green=verdict.passed, red=not verdict.passed, bold=True)
        for reason in [*verdict.reasons, *verdict.notes]:
            terminalreporter.write_line(f"  {reason}")
    for note in state.notes:
        terminalreporter.write_line(note, red=True)


# ---- fixtures for Python tests --------------------------------------------------------------------

@pytest.fixture(scope="session")
def llmops_settings(pytestconfig: pytest.Config) -> Settings:
    """The project's settings with the ``--llmops-*`` options applied."""
    return _settings(pytestconfig)


@pytest.fixture(scope="session")
def llmops_client(llmops_settings: Settings) -> LLMClient:
    """The LLM client (same cache and settings as ``llmops run``)."""
    from llmops.llm.client import LLMClient

    return LLMClient(llmops_settings)


@pytest.fixture
def llmops(llmops_client: LLMClient) -> Any:
    """Helpers: ``render``, ``complete``, ``acomplete``, ``evaluate`` and ``assert_scores``."""
    from llmops.assertions import LLMOpsFixture

    return LLMOpsFixture(llmops_client)
