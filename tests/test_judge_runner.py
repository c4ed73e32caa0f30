"""Judging below the Dagster layer: error rows, parse failures, the judge cache, agreement rows, pairwise rows and
the Bedrock output shape, with an in-process scripted judge."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.judging import builtin_metric, parse_custom_metrics
from eval_pipeline.judging.bedrock_output import bedrock_output_records
from eval_pipeline.judging.quality import human_level, judge_agreement
from eval_pipeline.judging.run import judgment_scores, prompt_text, run_judgments, run_pairwise
from eval_pipeline.metrics.model_comparison import POSITION_CONSISTENCY, PREFERENCE, compare_suite, pairwise_rows
from tests.fakes.judge import blocks

POSITIVE = parse_custom_metrics([{"customMetricDefinition": {
    "name": "Upbeat", "instructions": "Is it upbeat?\nPrompt: {{prompt}}\nResponse: {{prediction}}",
    "ratingScale": [{"definition": "Good", "value": {"floatValue": 1}},
                    {"definition": "Poor", "value": {"floatValue": 0}}]}}])[0]


class ScriptedJudge:
    """Answers each judge request with ``reply(fields)``; counts requests."""

    backend = "scripted-judge"

    def __init__(self, reply: Callable[[dict[str, str]], str | None], version: str = "v1") -> None:
        self.reply, self.version, self.seen = reply, version, 0

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "version": self.version}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: Any = None) -> list[Completion]:
        self.seen += len(requests)
        out = []
        for request in requests:
            text = self.reply(blocks(request.messages[-1].content))
            out.append(Completion.failed("judge throttled") if text is None else Completion(output=text))
        return out


def samples() -> pd.DataFrame:
    return pd.DataFrame({"sample_id": ["a", "b", "c"], "input": ["say hi", "say bye", "say yo"],
                         "input_kind": "text", "reference": ["hi", None, "yo"], "category": None,
                         "metadata": ['{"human": "Good"}', '{"human": "0"}', '{"human": "meh"}'],
                         "row_hash": ["1", "2", "3"]})


def generations(model: str, outputs: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": ["a", "b", "c"], "model": model, "sample_index": 0, "output": outputs,
                         "error": [None if o is not None else "timeout" for o in outputs]})


def test_judgments_rows_errors_and_cache(tmp_path: Path) -> None:
    def reply(fields: dict[str, str]) -> str | None:
        prediction = fields["prediction"]
        if prediction == "garbage":
            return "I refuse to rate this."
        return f"Fine.\nVerdict: {'Good' if '!' in prediction else 'Poor'}"

    judge, cache = ScriptedJudge(reply), RequestCache(tmp_path / "judge.sqlite")
    gens = generations("m", ["hi!", "garbage", None])
    frame, stats = run_judgments(samples(), gens, [POSITIVE], judge, GenerationParams(), judge_model="j",
                                 cache=cache)
    assert frame["score"].tolist()[:1] == [1.0] and frame["label"].tolist()[0] == "Good"
    assert frame["explanation"].tolist()[0] == "Fine."
    assert "could not be parsed" in frame["error"][1] and "I refuse" in frame["explanation"][1]
    assert frame["error"][2] == "no answer to judge: timeout" and pd.isna(frame["judge_request_hash"][2])
    assert (stats.requests, stats.sent, stats.errors) == (2, 2, 2)
    again, stats = run_judgments(samples(), gens, [POSITIVE], judge, GenerationParams(), judge_model="j",
                                 cache=cache)
    assert stats.cached == 2 and judge.seen == 2 and again["score"].tolist()[:1] == [1.0]
    scores = judgment_scores(frame)
    assert scores["scorer"].tolist() == ["Upbeat"] * 3 and scores["extracted"].tolist()[0] == "Good"


def test_failed_judge_requests_are_error_rows_and_not_cached(tmp_path: Path) -> None:
    judge, cache = ScriptedJudge(lambda fields: None), RequestCache(tmp_path / "judge.sqlite")
    frame, _ = run_judgments(samples(), generations("m", ["x", "y", "z"]), [POSITIVE], judge, GenerationParams(),
                             judge_model="j", cache=cache)
    assert frame["error"].str.startswith("judge request failed: judge throttled").all() and len(cache) == 0


def test_reference_reaches_the_judge_only_where_there_is_one() -> None:
    seen: list[dict[str, str]] = []
    judge = ScriptedJudge(lambda fields: seen.append(fields) or "Verdict: Correct")
    run_judgments(samples(), generations("m", ["hi", "bye", "yo"]), [builtin_metric("Correctness")], judge,
                  GenerationParams(), judge_model="j")
    assert [f.get("ground_truth") for f in seen] == ["hi", None, "yo"]


def test_human_labels_match_by_definition_or_value() -> None:
    assert human_level(POSITIVE, "good") == "Good" and human_level(POSITIVE, "0") == "Poor"
    assert human_level(POSITIVE, 1.0) == "Good" and human_level(POSITIVE, "meh") is None


def test_judge_agreement_rows() -> None:
    judge = ScriptedJudge(lambda fields: "Verdict: Good")
    frame, _ = run_judgments(samples(), generations("m", ["a", "b", "c"]), [POSITIVE], judge, GenerationParams(),
                             judge_model="j")
    rows = judge_agreement("s", "m", samples(), frame, [POSITIVE], {"Upbeat": "human"}).set_index("metric")
    # judged Good everywhere; humans said Good, Poor and an unusable "meh" (counted as an error, not a pair)
    assert rows.loc["judge.Upbeat.accuracy", "value"] == 0.5 and rows.loc["judge.Upbeat.accuracy", "n"] == 2
    assert rows.loc["judge.Upbeat.accuracy", "errors"] == 1
    assert rows.loc["judge.Upbeat.kappa", "value"] == pytest.approx(0.0)


def test_messages_input_is_shown_as_a_transcript() -> None:
    text = '[{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}]'
    assert prompt_text(text, "messages") == "system: be kind\n\nuser: hi"


def test_pairwise_judging_and_its_statistics() -> None:
    def prefer_exclaimed(fields: dict[str, str]) -> str:
        a, b = fields["answer_a"], fields["answer_b"]
        return "Verdict: " + ("A" if "!" in a and "!" not in b else "B" if "!" in b and "!" not in a else "tie")

    model, baseline = generations("tuned", ["hi!", "bye!", "yo"]), generations("base", ["hi", "bye!", "yo!"])
    frame = run_pairwise(samples(), model, baseline, ScriptedJudge(prefer_exclaimed), GenerationParams(),
                         judge_model="j")
    assert frame["winner"].tolist() == ["model", "tie", "baseline"] and frame["consistent"].all()
    rows = pairwise_rows("s", frame).set_index("metric")
    assert rows.loc[PREFERENCE, "model_value"] == pytest.approx(1 / 3)
    assert rows.loc[PREFERENCE, "diff"] == pytest.approx(0.0)
    assert rows.loc[PREFERENCE, "p_value"] == pytest.approx(binomtest(1, 2).pvalue)
    assert rows.loc[POSITION_CONSISTENCY, "model_value"] == 1.0


def test_comparison_includes_judge_metrics_and_skips_errors() -> None:
    scores = pd.DataFrame({
        "model": ["base"] * 3 + ["tuned"] * 3, "scorer": "Upbeat", "sample_id": ["a", "b", "c"] * 2,
        "sample_index": 0, "score": [0.0, 1.0, np.nan, 1.0, 1.0, 1.0], "error": [None, None, "x", None, None, None]})
    [row] = compare_suite("s", "base", scores).to_dict("records")
    assert (row["n"], row["diff"], row["test"], row["b"], row["c"]) == (2, 0.5, "mcnemar", 1, 0)


def test_bedrock_output_records() -> None:
    judge = ScriptedJudge(lambda fields: "ok\nVerdict: Good" if fields["prediction"] != "b" else "??")
    gens = generations("m", ["a", "b", None])
    frame, _ = run_judgments(samples(), gens, [POSITIVE, builtin_metric("Refusal")], judge, GenerationParams(),
                             judge_model="bedrock:judge")
    records = list(bedrock_output_records(samples(), gens, frame, model_identifier="my-model"))
    assert len(records) == 3
    first = records[0]
    assert first["inputRecord"] == {"prompt": "say hi", "referenceResponse": "hi"}
    assert [s["metricName"] for s in first["automatedEvaluationResult"]["scores"]] == ["Upbeat", "Builtin.Refusal"]
    assert first["automatedEvaluationResult"]["scores"][0]["result"] == 1.0
    assert first["automatedEvaluationResult"]["scores"][0]["evaluatorDetails"][0]["modelIdentifier"] == "bedrock:judge"
    assert records[1]["automatedEvaluationResult"]["scores"][0]["result"] is None
    assert records[2]["modelResponses"] == [{"response": "", "modelIdentifier": "my-model"}]


def test_likelihood_verdicts_pick_the_most_likely_level_per_character(tiny_model_dir: str) -> None:
    from eval_pipeline.inference.likelihood import LoglikelihoodRequest
    from eval_pipeline.inference.likelihood_local import LocalLikelihoodScorer
    from eval_pipeline.judging.likelihood_verdicts import judge_context, run_likelihood_judgments
    from eval_pipeline.judging.prompt import judge_messages

    metrics = [POSITIVE, builtin_metric("Correctness")]
    gens = generations("m", ["hi!", "bye", None])
    frame, stats = run_likelihood_judgments(samples(), gens, metrics, LocalLikelihoodScorer(tiny_model_dir),
                                            judge_model="local:tiny")
    assert (stats.requests, stats.errors) == (4, 2) and len(frame) == 6
    assert frame["error"].tolist()[4:] == ["no answer to judge: timeout"] * 2
    reference = LocalLikelihoodScorer(tiny_model_dir, batch_size=1)
    for row in frame.head(4).itertuples(index=False):
        metric = next(m for m in metrics if m.name == row.metric)
        item = samples().set_index("sample_id").loc[row.sample_id]
        prediction = gens.set_index("sample_id").loc[row.sample_id, "output"]
        reference_answer = item["reference"] if isinstance(item["reference"], str) else None
        messages = judge_messages(metric, prompt=item["input"], prediction=prediction, ground_truth=reference_answer)
        context = judge_context(reference, messages)
        scored = reference.loglikelihood([LoglikelihoodRequest(context, f" {d}") for d in metric.definitions])
        per_char = [s.logprob / len(d) for s, d in zip(scored, metric.definitions, strict=True)]
        expected = metric.definitions[int(np.argmax(per_char))]
        assert row.label == expected and row.score == metric.score(metric.level(expected))
        assert context.endswith("Verdict:") and "verdict by likelihood" in row.explanation


def test_likelihood_verdicts_turn_a_failed_scorer_into_error_rows() -> None:
    from eval_pipeline.judging.likelihood_verdicts import run_likelihood_judgments

    class Broken:
        backend = "broken"

        def loglikelihood(self, requests: Any) -> Any:
            raise RuntimeError("out of memory")

    frame, _ = run_likelihood_judgments(samples(), generations("m", ["a", "b", "c"]), [POSITIVE], Broken(),
                                        judge_model="x")
    assert frame["error"].str.contains("judge scoring failed: RuntimeError: out of memory").all()
