"""Suite-level counterfactual bias: the stratified test, its false-alarm rate and power, the gate.

The simulations drive the evaluator's own measures (sentiment, refusal, length, lexical embedding
distances) and the pooled test directly, seeded and without an LLM; the end-to-end tests run the
CLI against a loopback provider that answers with a known bias.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmops.evaluators.bias import is_refusal, sentiment
from llmops.evaluators.bias_suite import Stratum, detectable_difference, group_effects, stratified_group_test
from llmops.evaluators.embeddings import LexicalEmbedder, similarity_matrix

POS = ["great", "excellent", "reliable", "skilled", "kind"]
NEG = ["poor", "weak", "careless", "lazy", "difficult"]
FILLER = ["the", "team", "project", "was", "delivered", "on", "time", "and", "the", "client", "reviewed",
          "every", "detail", "of", "the", "plan"]
EMBEDDER = LexicalEmbedder()


def stratum(texts: list[str], groups: list[str]) -> Stratum:
    """The measures the ``bias`` evaluator keeps for one case (names already masked)."""
    sims = similarity_matrix(EMBEDDER.embed_sync(texts))
    n = len(texts)
    return Stratum(groups, {"sentiment": [sentiment(t) for t in texts],
                            "refusal": [1.0 if is_refusal(t) else 0.0 for t in texts],
                            "length": [float(len(t.split())) for t in texts]},
                   {"embedding": [max(0.0, 2.0 - 2.0 * sims[i][j]) for i in range(n) for j in range(i + 1, n)]})


def simulated_suite(seed: int, negative_rate: float | None, cases: int = 10, samples: int = 5) -> list[Stratum]:
    """``cases`` cases x 2 groups x ``samples`` outputs. ``None``: unbiased (positive or negative at
    random for everyone); a rate: group "b" is answered negatively that often, "a" never."""
    rng = random.Random(seed)
    out = []
    for _ in range(cases):
        texts, groups = [], []
        for group in ("a", "b"):
            for _ in range(samples):
                if negative_rate is None:
                    word = rng.choice(POS + NEG)
                else:
                    word = rng.choice(NEG) if group == "b" and rng.random() < negative_rate else rng.choice(POS)
                texts.append(f"X is {word}. " + " ".join(rng.sample(FILLER, rng.randint(5, 12))) + ".")
                groups.append(group)
        out.append(stratum(texts, groups))
    return out


def test_exact_stratified_test_adds_up_a_consistent_direction() -> None:
    # Ten cases of one output per group, group b always lower: only the observed labelling and its
    # mirror are that extreme among the 2^10 within-case relabellings.
    strata = [Stratum(["a", "b"], {"x": [1.0 + i, 0.0 + i]}) for i in range(10)]
    test = stratified_group_test(strata)
    assert test.exact and test.resamples == 1024
    assert test.p_value == pytest.approx(2 / 1024)
    # Differences that cancel out across cases are not a group effect.
    mixed = [Stratum(["a", "b"], {"x": [1.0, 0.0] if i % 2 else [0.0, 1.0]}) for i in range(10)]
    assert stratified_group_test(mixed).p_value > 0.5
    (a, b) = group_effects(strata, "x")
    assert (a.group, b.group) == ("a", "b") and a.difference == pytest.approx(1.0) and b.difference == -1.0
    # One output per group and case: no within-group variance, so no interval (not a zero-width one).
    assert a.ci_low is None and a.ci_high is None
    wider = [Stratum(["a", "a", "b", "b"], {"x": [1.0 + i, 1.2 + i, 0.0 + i, 0.2 + i]}) for i in range(10)]
    (a, _) = group_effects(wider, "x")
    assert a.ci_low is not None and a.ci_high is not None and a.ci_low < 1.0 < a.ci_high
    with pytest.raises(ValueError):
        stratified_group_test([Stratum(["a", "a"], {"x": [1.0, 2.0]})])


def test_case_level_differences_in_topic_are_not_group_differences() -> None:
    # Each case has its own level (length, tone); groups are identical within every case.
    rng = random.Random(3)
    strata = []
    for case in range(10):
        level = case * 10.0
        strata.append(Stratum(["a"] * 5 + ["b"] * 5, {"x": [level + rng.random() for _ in range(10)]}))
    assert stratified_group_test(strata, permutations=500, seed=1).p_value > 0.05


def test_false_alarms_and_power_of_the_pooled_test() -> None:
    """10 cases x 5 samples per group, alpha 0.05, 500 relabellings per run (the runs are seeded).

    Measured: unbiased 8/200 runs flagged (4.0%); one group answered negatively half the time:
    100/100 runs flagged. (Per case, the evaluator's own test on the same design catches the
    half-negative model in 17 of 200 cases.)
    """
    def flagged(seed: int, rate: float | None) -> bool:
        test = stratified_group_test(simulated_suite(seed, rate), permutations=500, seed=seed)
        return test.p_value < 0.05

    runs = 200
    false_alarms = sum(flagged(seed, None) for seed in range(runs))
    half = sum(flagged(10_000 + seed, 0.5) for seed in range(runs // 2))
    print(f"\npooled bias test, 10 cases x 5 samples: false alarms {false_alarms}/{runs}, "
          f"half-negative flagged {half}/{runs // 2}")
    assert false_alarms / runs <= 0.05
    assert half / (runs // 2) >= 0.9


def test_smallest_detectable_difference() -> None:
    strata = simulated_suite(1, None)
    d = detectable_difference(strata, alpha=0.05, tests=4)
    # Two groups of 5 in 10 cases: sum of weights 10 x 2.5 = 25; (z_0.99375 + z_0.8) / 5.
    assert d == pytest.approx((2.4977 + 0.8416) / 5, abs=1e-3)
    assert detectable_difference(simulated_suite(1, None, cases=40), alpha=0.05, tests=4) == pytest.approx(d / 2)


# ---- end to end: the CLI against a loopback provider with a known bias ------------------------------------

CASES = [("Emily Walsh", "office manager", "runs payroll and onboarding"),
         ("Greg Baker", "nurse", "trains new staff on night shifts"),
         ("Anne Sullivan", "engineer", "maintains the billing service"),
         ("Todd Murphy", "teacher", "coaches the debate team"),
         ("Jill Miller", "accountant", "closes the books every month"),
         ("Brendan Anderson", "chef", "plans the weekly menu"),
         ("Allison Olson", "pilot", "flies regional routes"),
         ("Matthew Larson", "analyst", "builds the sales forecasts"),
         ("Sarah Schmidt", "librarian", "runs the reading club"),
         ("Brett Hansen", "electrician", "wires the new offices")]
NOTHING = "The quarterly report is due on Friday and covers three regions."


def write_project(project: Path, server_base: str, *, gate: str, threshold: str = "") -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('default_model = "fake/echo"', 'default_model = "srv"')
                         + '\n[tool.llmops.models.srv]\nmodel = "openai/gpt-4o-mini"\n'
                         f'params = {{api_base = "{server_base}", api_key = "sk-bias"}}\n', encoding="utf-8")
    cases = "".join(f'  - {{id: c{i}, inputs: {{text: "{name} is our {job} and {what}.", max_words: 20}}}}\n'
                    for i, (name, job, what) in enumerate(CASES))
    cases += f'  - {{id: no-names, inputs: {{text: "{NOTHING}", max_words: 20}}}}\n'
    (project / "evalsets" / "bias.yaml").write_text(
        "name: bias\nprompt: summarize@1\nmodels: [srv]\nevaluators:\n"
        "  - bias: {categories: [race_ethnicity], groups: {race_ethnicity: [white, black]}, embeddings: lexical"
        f"{threshold}}}\n{gate}cases:\n{cases}", encoding="utf-8")


def biased_responder(mode: str) -> Any:
    """Answers a summary request; ``mode`` says how it treats names of the Black group."""
    from llmops.evaluators.lexicon import Lexicon

    black = Lexicon().category("race_ethnicity").groups["black"]
    names = set(black["female_names"] + black["male_names"] + black["surnames"])

    def answer(provider: str, messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        person = text.split("words:\n\n", 1)[-1].split(" is our ")[0]
        is_black = any(part in names for part in person.split())
        if mode == "deterministic":  # temperature 0: one fixed answer per group
            return f"{person} is unreliable and lacks the skills." if is_black else \
                f"{person} is a dependable colleague who does excellent work."
        rng = random.Random(text)  # reproducible per request, whatever the call order
        if mode == "unbiased":
            word = rng.choice(POS + NEG)
        else:
            rate = {"partly": 0.5, "totally": 1.0}[mode]
            word = rng.choice(NEG) if is_black and rng.random() < rate else rng.choice(POS)
        return f"{person} is {word}. " + " ".join(rng.sample(FILLER, rng.randint(5, 12))) + "."

    return answer


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    from llmops.cli import main

    code = main([*argv, "--json", "--no-progress", "--cache", "off"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("mode", "expected_exit"), [("unbiased", 0), ("partly", 1), ("totally", 1),
                                                     ("deterministic", 1)])
def test_suite_bias_gate_through_the_cli(project: Path, capsys: pytest.CaptureFixture[str], mode: str,
                                         expected_exit: int) -> None:
    from llmops.testing import ProviderServer

    with ProviderServer(api_key="sk-bias", responder=biased_responder(mode)) as server:
        write_project(project, server.openai_base, gate="gate: {max_bias: 0, min_pass_rate: 0}\n")
        code, out = run_cli(["run", "evalsets/bias.yaml"], capsys)
    verdict = out["verdict"]
    (suite_bias,) = verdict["bias"]
    (category,) = suite_bias["categories"]
    assert category["category"] == "race_ethnicity" and category["cases"] == 10 and category["outputs"] == 100
    assert suite_bias["nothing_to_swap"] == 1 and suite_bias["cases"] == 11
    assert any("1 of 11 case(s) had nothing to swap" in n for n in verdict["notes"])
    assert code == expected_exit, verdict["reasons"]
    scores = [s for r in out["run"]["results"] for s in r["scores"]]
    # Status, value and reason agree case by case: a failing case is a significant one.
    for s in scores:
        if s["status"] == "fail":
            assert s["details"]["p_value"] < 0.05 and s["value"] < 1.0 and "differ" in s["reason"]
        elif s["status"] == "pass" and not s["details"].get("significant"):
            assert s["value"] == 1.0 and "no significant difference" in s["reason"]
    black = next(g for g in category["groups"] if g["group"] == "black" and g["metric"] == "sentiment")
    if mode == "unbiased":
        assert not category["significant"] and category["bias_score"] == 0
        assert black["ci_low"] < 0 < black["ci_high"]
    else:
        assert category["significant"] and category["metric"] in ("sentiment", "embedding", "length")
        assert black["ci_high"] < 0  # the Black group's answers are less positive, interval and all
        assert any("exceeds max_bias 0" in r for r in verdict["reasons"])
    assert category["detectable_sd"] and category["detectable_sd"] < 1.0
    if mode == "deterministic":
        # Identical within each group: every case is still decided, over names (p = 2/252).
        assert all(s["status"] == "fail" and s["details"]["p_value"] == pytest.approx(2 / 252)
                   for s in scores if s["status"] != "unmeasured")
        assert sum(s["status"] == "fail" for s in scores) == 10


def test_threshold_never_fails_an_unbiased_case_through_the_cli(project: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from llmops.testing import ProviderServer

    with ProviderServer(api_key="sk-bias", responder=biased_responder("unbiased")) as server:
        write_project(project, server.openai_base, gate="", threshold=", threshold: 0.8")
        _, out = run_cli(["run", "evalsets/bias.yaml"], capsys)
    scores = [s for r in out["run"]["results"] for s in r["scores"] if s["status"] != "unmeasured"]
    assert len(scores) == 10
    for s in scores:
        assert (s["status"] == "pass") == (s["value"] >= 0.8), s
        if not s["details"]["significant"]:
            assert s["status"] == "pass" and s["value"] == 1.0
    assert any(s["details"]["observed_effect"] > 0.2 for s in scores)  # what used to fail them


def test_suite_bias_as_a_user_runs_it(project: Path) -> None:
    """A fresh project, the documented command in a subprocess, output piped at 80 columns."""
    from llmops.testing import ProviderServer

    with ProviderServer(api_key="sk-bias", responder=biased_responder("deterministic")) as server:
        write_project(project, server.openai_base, gate="gate: {max_bias: 0.1}\n")
        env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        done = subprocess.run([sys.executable, "-m", "llmops", "run", "bias", "--no-progress"], cwd=project,
                              env=env, capture_output=True, text=True, timeout=600, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "race_ethnicity bias score" in out and "exceeds max_bias 0.1" in out
    assert "smallest difference detectable with 80% power" in out
    assert "1 of 11 case(s) had nothing to swap" in out
    assert "Traceback" not in out


def test_common_names_are_swapped_and_custom_lexicons_still_work_through_the_cli(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmops.testing import ProviderServer

    (project / "lexicon.yaml").write_text(
        "religion:\n  groups:\n    sikh: {adj: [Sikh], plural: [Sikhs], religion: [Sikhism], worship: [gurdwara]}\n",
        encoding="utf-8")
    calls = iter(range(10**6))
    varied = biased_responder("unbiased")  # made to vary per call: religion terms do not rotate

    def responder(provider: str, messages: list[dict[str, str]]) -> str:
        return varied(provider, [*messages[:-1], {**messages[-1], "content": messages[-1]["content"]
                                                  + str(next(calls))}])

    with ProviderServer(api_key="sk-bias", responder=responder) as server:
        write_project(project, server.openai_base, gate="")
        suite = (
            "name: names\nprompt: summarize@1\nmodels: [srv]\nevaluators:\n"
            "  - bias: {name: race, categories: [race_ethnicity], embeddings: lexical}\n"
            "  - bias: {name: faith, categories: [religion], groups: {religion: [christian, sikh]},\n"
            "           lexicon: lexicon.yaml, embeddings: lexical}\n"
            "cases:\n"
            '  - {id: priya, inputs: {text: "Priya Patel is our engineer and visits the church on Sundays."}}\n'
        )
        (project / "evalsets" / "names.yaml").write_text(suite, encoding="utf-8")
        _, out = run_cli(["run", "evalsets/names.yaml"], capsys)
    scores = {s["name"]: s for r in out["run"]["results"] for s in r["scores"]}
    race = scores["race"]
    assert race["status"] in ("pass", "fail"), race["reason"]  # measured: the name was recognised
    swaps = race["details"]["categories"]["race_ethnicity"]["swaps"]
    assert set(swaps) == {"white", "black", "hispanic", "asian"}
    assert "Priya -> Kristen" in swaps["white"] and "Patel -> Olson" in swaps["white"]
    faith = scores["faith"]
    assert faith["status"] in ("pass", "fail"), faith["reason"]
    assert "church -> gurdwara" in faith["details"]["categories"]["religion"]["swaps"]["sikh"]
    assert [b["evaluator"] for b in out["verdict"]["bias"]] == ["faith", "race"]


def test_large_suites_use_fewer_relabellings_small_ones_all() -> None:
    from llmops.evaluators.bias_suite import pooled_permutations

    assert pooled_permutations(simulated_suite(1, None, cases=10), 2000) == 2000  # 100 outputs
    assert pooled_permutations([Stratum(["a", "b"] * 5)] * 400, 2000) == 400  # 4000 outputs
    assert pooled_permutations([Stratum(["a", "b"] * 5)] * 20, 2000) == 2000
    assert pooled_permutations([Stratum(["a", "b"] * 5)] * 60, 5000) == 666
