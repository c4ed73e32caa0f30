"""Release gates, pure: the one-sided paired verdicts against hand-computed binomial sums and scipy.stats' t-test,
Holm against a hand step-down, the minimum detectable effect against the normal formula and a simulation of the
gate's own test, the edge cases (identical models, constant differences, tiny n, unpaired items, several samples
per item), the suite's ``gates``/``promote`` blocks checked at load, and where a model's registry entry is found."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from eval_pipeline.errors import EvalInputError
from eval_pipeline.metrics.paired_difference import paired_difference
from eval_pipeline.metrics.ranges import UNBOUNDED, ValueRange
from eval_pipeline.metrics.release_gates import (
    MetricRule,
    baseline_gate,
    minimum_detectable_effect,
    one_sided_p,
    pair_items,
    release_gate,
)
from eval_pipeline.suites.loading import load_suite
from eval_pipeline.tracking.promotion import promotion_targets

Z95, Z80 = 1.6448536269514722, 0.8416212335729143  # standard normal quantiles 0.95 and 0.80


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(Bin(n, p) ≤ k), summed by hand."""
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(0, k + 1))


def binary_pairs(b: int, c: int, both: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """b items only the model gets right, c only the baseline, then concordant ones."""
    x = [1.0] * b + [0.0] * c + [1.0] * both + [0.0] * neither
    y = [0.0] * b + [1.0] * c + [1.0] * both + [0.0] * neither
    return np.array(x), np.array(y)


def table(values: list[float] | np.ndarray, metric: str = "m", ids: list[str] | None = None,
          errors: dict[int, str] | None = None) -> pd.DataFrame:
    ids = ids or [f"s{i}" for i in range(len(values))]
    errors = errors or {}
    return pd.DataFrame({"sample_id": ids, "sample_index": 0, "scorer": metric,
                         "score": [None if i in errors else float(v) for i, v in enumerate(values)],
                         "error": [errors.get(i) for i in range(len(values))]})


# --- one-sided p-values ---------------------------------------------------------------------------------------------


def test_mcnemar_regression_beyond_a_margin_is_the_binomial_tail_at_the_shifted_share() -> None:
    x, y = binary_pairs(b=3, c=12, both=30, neither=5)  # n = 50, diff = −9/50
    pi0 = (1 - 0.02 * 50 / 15) / 2
    assert one_sided_p(x, y, "max_regression", 0.02) == pytest.approx(binom_cdf(3, 15, pi0), rel=1e-12)
    # at X = 0 it is the one-sided exact McNemar: half the procedure's two-sided p
    assert one_sided_p(x, y, "max_regression", 0.0) == pytest.approx(binom_cdf(3, 15, 0.5), rel=1e-12)
    assert one_sided_p(x, y, "max_regression", 0.0) == pytest.approx(paired_difference(x, y).p_value / 2)
    # a regression beyond what the discordant pairs allow is impossible: p = 1
    assert one_sided_p(x, y, "max_regression", 0.31) == 1.0


def test_mcnemar_improvement_beyond_a_margin_is_the_upper_binomial_tail() -> None:
    x, y = binary_pairs(b=14, c=4, both=20, neither=2)  # n = 40
    pi1 = (1 + 0.05 * 40 / 18) / 2
    assert one_sided_p(x, y, "min_improvement", 0.05) == pytest.approx(1 - binom_cdf(13, 18, pi1), rel=1e-10)
    assert one_sided_p(x, y, "min_improvement", 0.5) == 1.0  # more than (b + c)/n: impossible


def test_mcnemar_on_a_wider_range_scales_the_margin() -> None:
    x, y = binary_pairs(b=2, c=9, both=10, neither=9)
    ten = ValueRange(0.0, 10.0)
    assert one_sided_p(x * 10, y * 10, "max_regression", 0.2, ten) == pytest.approx(
        one_sided_p(x, y, "max_regression", 0.02), rel=1e-12)


def test_paired_t_against_scipy_one_sample_tests_shifted_by_the_threshold() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.uniform(0, 1, 40), rng.uniform(0, 1, 40)
    d = x - y
    assert one_sided_p(x, y, "max_regression", 0.03) == pytest.approx(
        stats.ttest_1samp(d + 0.03, 0.0, alternative="less").pvalue, rel=1e-10)
    assert one_sided_p(x, y, "min_improvement", 0.01) == pytest.approx(
        stats.ttest_1samp(d - 0.01, 0.0, alternative="greater").pvalue, rel=1e-10)


def test_the_rule_is_the_one_sided_confidence_bound_rule() -> None:
    """max_regression fails at level α exactly when the upper bound of the (1 − 2α) two-sided interval (the
    one-sided 1 − α bound) lies below −X; min_improvement passes exactly when the lower bound lies above X."""
    rng = np.random.default_rng(11)
    alpha = 0.05
    for shift in (-0.2, -0.08, -0.03, 0.0, 0.05, 0.12):
        x = np.clip(rng.normal(0.5 + shift, 0.2, 60), 0, 1)
        y = np.clip(rng.normal(0.5, 0.2, 60), 0, 1)
        interval = paired_difference(x, y, confidence=1 - 2 * alpha)
        assert (one_sided_p(x, y, "max_regression", 0.02) < alpha) == (interval.ci_high < -0.02)
        assert (one_sided_p(x, y, "min_improvement", 0.02) < alpha) == (interval.ci_low > 0.02)


# --- Holm and the verdicts -----------------------------------------------------------------------------------------


def test_holm_runs_over_the_gated_metrics_of_one_model() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.8, 50)
    frames_model, frames_base, rules = [], [], []
    for metric, shift in (("a", -0.10), ("b", -0.04), ("c", 0.0)):
        frames_model.append(table(np.clip(base + shift + rng.normal(0, 0.1, 50), 0, 1), metric))
        frames_base.append(table(base, metric))
        rules.append(MetricRule(metric, "max_regression", 0.0))
    model, baseline = pd.concat(frames_model), pd.concat(frames_base)
    gate = release_gate("m", "b0", model, baseline, rules, alpha=0.05)
    raw = {r.metric: one_sided_p(*_xy(model, baseline, r.metric), "max_regression", 0.0) for r in rules}
    order = sorted(raw, key=raw.get)  # hand step-down: (m − i)·p₍ᵢ₎, running maximum, capped at 1
    expected, running = {}, 0.0
    for i, metric in enumerate(order):
        running = max(running, min(1.0, (3 - i) * raw[metric]))
        expected[metric] = running
    detail = gate.detail["metrics"]
    for metric in raw:
        assert detail[metric]["p_gate"] == pytest.approx(raw[metric], rel=1e-12)
        assert detail[metric]["p_holm"] == pytest.approx(expected[metric], rel=1e-12)
        assert detail[metric]["passed"] == (expected[metric] >= 0.05)
    failing = [m for m in raw if expected[m] < 0.05]
    assert failing and gate.observed == len(failing) and gate.allowed == 0.0 and not gate.passed
    assert gate.reason is not None and all(f"{m}: regression" in gate.reason for m in failing)


def _xy(model: pd.DataFrame, baseline: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    items = pair_items(model, baseline, metric)
    return items.x, items.y


def test_min_improvement_passes_only_when_shown() -> None:
    x, y = binary_pairs(b=20, c=2, both=30, neither=8)  # +0.3 over 60 items
    rules = [MetricRule("m", "min_improvement", 0.05)]
    assert release_gate("m1", "b0", table(x), table(y), rules).passed
    x, y = binary_pairs(b=4, c=2, both=30, neither=24)  # +0.033: not shown
    gate = release_gate("m1", "b0", table(x), table(y), rules)
    assert not gate.passed and "not significantly above the required +0.0500" in gate.reason
    assert "MDE" in gate.reason


def test_the_detail_reports_the_procedures_difference_and_interval() -> None:
    x, y = binary_pairs(b=3, c=12, both=30, neither=5)
    gate = release_gate("m1", "b0", table(x), table(y), [MetricRule("m", "max_regression", 0.0)], alpha=0.1)
    verdict = gate.detail["metrics"]["m"]
    reference = paired_difference(x, y, confidence=0.9)
    assert (verdict["diff"], verdict["ci_low"], verdict["ci_high"], verdict["p_value"]) == pytest.approx(
        (reference.diff, reference.ci_low, reference.ci_high, reference.p_value))
    assert verdict["test"] == "mcnemar" and verdict["n"] == 50 and verdict["threshold"] == 0.0
    assert (verdict["model_value"], verdict["baseline_value"]) == pytest.approx((33 / 50, 42 / 50))
    assert gate.detail["summary"].startswith("release_gate failed for m1 against b0: m -0.1800 [")
    assert "vs ≥ +0.0000: p_holm" in gate.detail["summary"] and "n = 50" in gate.detail["summary"]


# --- minimum detectable effect ------------------------------------------------------------------------------------


def test_mde_is_the_normal_formula_with_the_observed_sd() -> None:
    d = np.array([0.1, -0.3, 0.2, 0.0, -0.1, 0.4, -0.2, 0.05])
    sd = math.sqrt(sum((v - d.mean()) ** 2 for v in d) / (len(d) - 1))
    assert minimum_detectable_effect(d, 0.05) == pytest.approx((Z95 + Z80) * sd / math.sqrt(len(d)), rel=1e-9)


def test_mde_for_a_binary_metric_uses_the_discordant_pair_variance() -> None:
    x, y = binary_pairs(b=6, c=10, both=60, neither=24)
    n, b, c = 100, 6, 10
    sd = math.sqrt((b + c) / (n - 1) - (b - c) ** 2 / (n * (n - 1)))
    assert minimum_detectable_effect(x - y, 0.05) == pytest.approx((Z95 + Z80) * sd / math.sqrt(n), rel=1e-9)


def test_the_mde_is_detected_with_power_0_8_by_the_gates_own_test() -> None:
    """Simulation: differences whose true mean is −X − MDE are flagged by the one-sided test at level α with
    probability ≈ 0.8 (the t-test's estimated SD costs a little power at this n)."""
    rng = np.random.default_rng(2024)
    n, sd, alpha, threshold = 400, 0.3, 0.05 / 2, 0.02  # α/m with two gated metrics
    mde = (stats.norm.ppf(1 - alpha) + stats.norm.ppf(0.8)) * sd / math.sqrt(n)
    flagged = 0
    trials = 1500
    for _ in range(trials):
        d = rng.normal(-threshold - mde, sd, n)
        if one_sided_p(d, np.zeros(n), "max_regression", threshold, UNBOUNDED) < alpha:
            flagged += 1
    assert flagged / trials == pytest.approx(0.8, abs=0.03)  # a two-sided z would give ≈ 0.85
    d = rng.normal(0.0, sd, n)
    assert minimum_detectable_effect(d, alpha) == pytest.approx(mde, rel=0.1)  # observed SD ≈ the true one


def test_the_gate_reports_the_mde_at_holms_strictest_level() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.uniform(0, 1, 30), rng.uniform(0, 1, 30)
    rules = [MetricRule("m", "max_regression", 0.0), MetricRule("k", "max_regression", 0.0)]
    model = pd.concat([table(x, "m"), table(x, "k")])
    baseline = pd.concat([table(y, "m"), table(y, "k")])
    gate = release_gate("m1", "b0", model, baseline, rules, alpha=0.05)
    assert gate.detail["metrics"]["m"]["mde"] == pytest.approx(minimum_detectable_effect(x - y, 0.025))


# --- edge cases ----------------------------------------------------------------------------------------------------


def test_identical_models_pass_a_regression_gate_and_fail_an_improvement_gate() -> None:
    x = np.array([1.0, 0.0, 1.0, 1.0, 0.0] * 8)
    rules = [MetricRule("m", "max_regression", 0.0), MetricRule("k", "min_improvement", 0.0)]
    gate = release_gate("twin", "b0", pd.concat([table(x, "m"), table(x, "k")]),
                        pd.concat([table(x, "m"), table(x, "k")]), rules)
    regression, improvement = gate.detail["metrics"]["m"], gate.detail["metrics"]["k"]
    assert regression["passed"] and regression["diff"] == 0.0 and regression["p_gate"] == 1.0
    assert regression["mde"] is None  # the differences do not vary: no MDE
    assert not improvement["passed"] and "undefined" in improvement["reason"]
    assert gate.reason is not None and gate.reason.startswith("k: ")


def test_constant_differences_are_certain() -> None:
    gate = release_gate("m1", "b0", table([0.5] * 10), table([0.7] * 10), [MetricRule("m", "max_regression", 0.1)])
    assert not gate.passed and gate.detail["metrics"]["m"]["p_gate"] == 0.0
    gate = release_gate("m1", "b0", table([0.65] * 10), table([0.7] * 10), [MetricRule("m", "max_regression", 0.1)])
    assert gate.passed and gate.detail["metrics"]["m"]["p_gate"] == 1.0


def test_a_tiny_n_cannot_show_anything() -> None:
    one = release_gate("m1", "b0", table([0.2]), table([0.9]), [MetricRule("m", "max_regression", 0.0)])
    verdict = one.detail["metrics"]["m"]
    assert one.passed and verdict["n"] == 1 and verdict["p_gate"] is None and verdict["mde"] is None
    assert verdict["p_holm"] == 1.0  # no p-value counts as 1 in Holm
    two = release_gate("m1", "b0", table([0.0, 0.0]), table([1.0, 1.0]), [MetricRule("m", "max_regression", 0.0)])
    assert two.passed and two.detail["metrics"]["m"]["p_gate"] == pytest.approx(0.25)  # P(Bin(2, ½) ≤ 0)
    empty = release_gate("m1", "b0", table([], ids=[]), table([1.0]), [MetricRule("m", "max_regression", 0.0)])
    assert not empty.passed and "no item scored by both" in empty.reason


def test_unpaired_items_are_reported_and_fail_the_gate_beyond_the_allowance() -> None:
    model = table([1, 1, 0, 1, 1], errors={2: "generation failed"})
    baseline = table([1, 1, 1, 1, 1, 0], ids=["s0", "s1", "s2", "s3", "s4", "s5"], errors={3: "judge failed"})
    rules = [MetricRule("m", "max_regression", 0.0)]
    gate = release_gate("m1", "b0", model, baseline, rules)
    verdict = gate.detail["metrics"]["m"]
    assert verdict["n"] == 3 and verdict["unpaired"] == 3  # s2: model errored; s3: baseline errored; s5: baseline only
    assert verdict["model_only"] == ["s3"] and verdict["baseline_only"] == ["s2", "s5"]
    assert not gate.passed and "3 items not scored on both sides (1 only by the model, 2 only by the baseline" \
        in gate.reason
    assert release_gate("m1", "b0", model, baseline, rules, max_unpaired=3).passed
    both_errored = release_gate("m1", "b0", table([1, 1], errors={1: "x"}), table([1, 1], errors={1: "y"}), rules)
    assert both_errored.detail["metrics"]["m"]["unpaired"] == 1 and not both_errored.passed


def test_an_items_samples_are_averaged_before_pairing() -> None:
    model = pd.DataFrame({"sample_id": ["a", "a", "b", "b"], "sample_index": [0, 1, 0, 1], "scorer": "m",
                          "score": [1.0, 0.0, 1.0, 1.0], "error": None})
    baseline = pd.DataFrame({"sample_id": ["b", "a"], "sample_index": [0, 0], "scorer": "m", "score": [0.0, 1.0],
                             "error": None})
    items = pair_items(model, baseline, "m")
    assert items.sample_ids == ["a", "b"] and items.x.tolist() == [0.5, 1.0] and items.y.tolist() == [1.0, 0.0]


def test_the_baseline_passes_trivially_and_says_so() -> None:
    gate = baseline_gate("b0", [MetricRule("m", "max_regression", 0.02)])
    assert gate.passed and gate.model == "b0" and "baseline" in gate.detail["note"]


# --- the suite's gates and promote blocks ---------------------------------------------------------------------------


SUITE = """\
suite: gated
dataset: {{uri: data.jsonl}}
models:
  - {{name: base, backend: precomputed, responses: r.jsonl}}
  - {{name: cand, backend: precomputed, responses: r.jsonl}}
scorers: [exact_match, f1]
{extra}
"""


def write_suite(folder: Path, extra: str) -> Path:
    path = folder / "gated.yaml"
    path.write_text(SUITE.format(extra=extra))
    return path


def test_a_valid_gates_block_loads(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, "gates: {baseline: base, alpha: 0.1, metrics: {exact_match: "
                                             "{max_regression: 0.02}, f1: {min_improvement: 0.0}}}\n"
                                             "promote: {mlflow_alias: champion}"))
    assert suite.gates is not None and suite.gates.alpha == 0.1
    assert [(n, s.rule, s.threshold) for n, s in suite.gates.metrics.items()] == [
        ("exact_match", "max_regression", 0.02), ("f1", "min_improvement", 0.0)]


@pytest.mark.parametrize(("extra", "field", "words"), [
    ("gates: {baseline: nobody, metrics: {f1: {max_regression: 0.1}}}", "gates.baseline", "not one of"),
    ("gates: {baseline: base, metrics: {bleu: {max_regression: 0.1}}}", "gates.metrics.bleu", "unknown gated metric"),
    ("gates: {baseline: base, metrics: {f1: {max_regression: 0.1, min_improvement: 0}}}", "gates.metrics.f1",
     "exactly one of"),
    ("gates: {baseline: base, metrics: {f1: {}}}", "gates.metrics.f1", "exactly one of"),
    ("gates: {baseline: base, metrics: {f1: {max_regression: -0.1}}}", "gates.metrics.f1.max_regression",
     "greater than or equal"),
    ("gates: {baseline: base, alpha: 1.5, metrics: {f1: {max_regression: 0.1}}}", "gates.alpha", "less than"),
    ("gates: {baseline: base, metrics: {}}", "gates.metrics", "at least 1"),
    ("promote: {mlflow_alias: champion}", "promote", "needs 'gates'"),
    ("gates: {baseline: base, metrics: {f1: {max_regression: 0.1}}}\npromote: {}", "promote", "no action"),
    ("gates: {baseline: base, metrics: {f1: {max_regression: 0.1}}}\n"
     "promote: {mlflow_alias: champion, targets: {cand: s3://x}}", "promote.targets.cand", "models:/"),
])
def test_bad_gates_are_refused_at_load_naming_file_line_and_field(tmp_path: Path, extra: str, field: str,
                                                                  words: str) -> None:
    path = write_suite(tmp_path, extra)
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    error = caught.value
    assert error.field == field and words in error.reason
    assert error.file == str(path.resolve()) or error.file == str(path)
    assert error.line is not None and error.line >= 7


def test_a_judge_metric_may_be_gated(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, "judge: {model: {backend: precomputed, responses: r.jsonl}, "
                                             "builtin_metrics: [Correctness]}\n"
                                             "gates: {baseline: base, metrics: {Correctness: {max_regression: 0}}}"))
    assert suite.gates is not None and "Correctness" in suite.gates.metrics


# --- where a model's registry entry is found ------------------------------------------------------------------------


def test_promotion_targets_in_order_of_precedence() -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/qa/3"
    targets = promotion_targets("cand", "models:/qa/7", {"cand": ["models:/qa/2"]},
                                {"eval/checkpoint_uri": arn})
    assert [(t.kind, t.uri, t.source) for t in targets] == [
        ("mlflow", "models:/qa/2", "promote.targets"), ("sagemaker", arn, "run tag eval/checkpoint_uri")]
    assert [t.uri for t in promotion_targets("cand", "models:/qa@staging", {}, {})] == ["models:/qa@staging"]
    assert promotion_targets("cand", "HuggingFaceTB/SmolLM2", {}, {"eval/checkpoint_uri": "s3://b/m/"}) == []


# --- a failed release gate fails the MLflow evaluation run, recorded as a failed error-rate gate is ---------------


def test_a_gate_failed_after_logging_is_recorded_as_a_gate_failed_at_logging(tmp_path: Path) -> None:
    """The release gate runs after the metrics asset logged the run: it records its verdict the way
    ``log_evaluation`` records a failed gate (``gate.failed``, ``gate.<name>``, status FAILED), merged with a failed
    error-rate gate, and a later pass (the check run again) undoes only its own failure."""
    from mlflow.tracking import MlflowClient

    from eval_pipeline.tracking.mlflow_log import log_evaluation, record_gate_verdict
    from tests.test_tracking import make_record

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    reason = "exact_match: regression -0.3333 is significantly beyond the allowed -0.0200"
    at_logging = client.get_run(log_evaluation(make_record("a", failed_gates={"release_gate": reason}),
                                               tracking_uri=uri))
    later = log_evaluation(make_record("b"), tracking_uri=uri)
    assert client.get_run(later).info.status == "FINISHED"
    record_gate_verdict(client, later, "release_gate", reason)
    failed = client.get_run(later)
    assert failed.info.status == at_logging.info.status == "FAILED"
    gate_tags = {k: v for k, v in failed.data.tags.items() if k.startswith("gate.")}
    assert gate_tags == {k: v for k, v in at_logging.data.tags.items() if k.startswith("gate.")}
    assert gate_tags == {"gate.failed": "release_gate", "gate.release_gate": reason}

    record_gate_verdict(client, later, "release_gate", None)  # passed on a rerun of the check
    passed = client.get_run(later)
    assert passed.info.status == "FINISHED" and "gate.failed" not in passed.data.tags
    assert passed.data.tags["gate.release_gate"] == "passed"

    errors = log_evaluation(make_record("c", failed_gates={"error_rate": "error rate 0.5 > 0.1"}), tracking_uri=uri)
    record_gate_verdict(client, errors, "release_gate", reason)
    assert client.get_run(errors).data.tags["gate.failed"] == "error_rate,release_gate"
    record_gate_verdict(client, errors, "release_gate", None)
    still = client.get_run(errors)
    assert still.info.status == "FAILED"  # the error-rate gate still failed it
    assert still.data.tags["gate.failed"] == "error_rate"
    assert still.data.tags["gate.error_rate"] == "error rate 0.5 > 0.1"


# --- the check reads the stages through the IO manager Dagster hands it -------------------------------------------


def test_the_created_io_manager_reads_a_models_stage_as_the_factory_does(tmp_path: Path) -> None:
    import dagster as dg

    from eval_pipeline.assets.release_gate import stage_reader
    from eval_pipeline.resources.parquet_io import ParquetIOManager

    stage = tmp_path / "s" / "scores"
    (stage / "sharded").mkdir(parents=True)
    whole = table([1.0, 0.0], ids=["a", "b"])
    whole.to_parquet(stage / "plain.parquet")
    for shard, ids in enumerate((["c"], ["d", "e"])):
        table([1.0] * len(ids), ids=ids).to_parquet(stage / "sharded" / f"{shard}.parquet")
    factory = ParquetIOManager(base_path=str(tmp_path))
    created = factory.create_io_manager(dg.build_init_resource_context())
    for model in ("plain", "sharded", "missing"):
        assert created.model_stage_paths(["s", "scores"], model) == factory.model_stage_paths(["s", "scores"], model)
    assert created.read_model_stage(["s", "scores"], "missing") is None
    pd.testing.assert_frame_equal(created.read_model_stage(["s", "scores"], "plain"), whole)
    assert created.read_model_stage(["s", "scores"], "sharded")["sample_id"].tolist() == ["c", "d", "e"]
    assert stage_reader(created) is created
    with pytest.raises(TypeError, match="Parquet IO manager"):
        stage_reader(dg.InMemoryIOManager())


# --- gates on the other task kinds --------------------------------------------------------------------------------

LIKELIHOOD_MODELS = ("  - {name: base, backend: openai, base_url: 'http://127.0.0.1:9/v1', model: base}\n"
                     "  - {name: cand, backend: openai, base_url: 'http://127.0.0.1:9/v1', model: cand}\n")


def likelihood_suite(folder: Path, task: str, gated: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task}.yaml"
    path.write_text(f"suite: {task}_gated\ntask: {task}\ndataset: {{uri: data.jsonl}}\nmodels:\n{LIKELIHOOD_MODELS}"
                    f"gates:\n  baseline: base\n  metrics:\n    {gated}: {{max_regression: 0.0}}\n")
    return path


def test_a_multiple_choice_suite_gates_acc_and_acc_norm_only(tmp_path: Path) -> None:
    from eval_pipeline.suites.checks import gateable_metrics

    suite = load_suite(likelihood_suite(tmp_path, "multiple_choice", "acc"))
    assert suite.gates is not None and list(suite.gates.metrics) == ["acc"]
    assert gateable_metrics(suite) == ["acc", "acc_norm"]
    path = likelihood_suite(tmp_path / "em", "multiple_choice", "exact_match")  # a default scorer it never scores
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    assert caught.value.field == "gates.metrics.exact_match" and caught.value.line == 10
    assert "the suite scores acc, acc_norm per item" in caught.value.reason


@pytest.mark.parametrize("metric", ["token_perplexity", "bits_per_byte", "word_perplexity", "next_token_accuracy"])
def test_a_corpus_metric_of_a_perplexity_suite_is_refused_with_the_reason(tmp_path: Path, metric: str) -> None:
    path = likelihood_suite(tmp_path, "perplexity", metric)
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    assert caught.value.field == f"gates.metrics.{metric}" and caught.value.line == 10
    assert caught.value.reason.startswith(f"{metric!r} cannot be gated: a corpus metric")


def test_a_traces_suites_evaluators_are_refused_with_the_reason(tmp_path: Path) -> None:
    import yaml

    examples = Path(__file__).resolve().parents[1] / "examples" / "data" / "traces"
    spec = {"suite": "gated_traces", "task": "traces", "schedule": None,
            "traces": {"evaluators": ["Builtin.TrajectoryExactOrderMatch"],
                       "dataSourceConfig": {"files": {"paths": [str(examples / "travel_agent_spans.jsonl")]}},
                       "evaluationMetadata": str(examples / "travel_agent_ground_truth.json")},
            "models": [{"name": "travel_agent", "backend": "recorded", "model": "travel_agent.DEFAULT"}],
            "gates": {"baseline": "travel_agent", "metrics": {"Builtin.TrajectoryExactOrderMatch":
                                                              {"max_regression": 0.0}}}}
    path = tmp_path / "traces.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    assert caught.value.field == "gates.metrics.Builtin.TrajectoryExactOrderMatch"
    assert "cannot be gated: each recorded agent has sessions of its own" in caught.value.reason


def test_a_rollout_suite_gates_reward_and_success(tmp_path: Path) -> None:
    from eval_pipeline.suites.checks import gateable_metrics

    repo = Path(__file__).resolve().parents[1]
    path = tmp_path / "evals" / "agents.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(f"""\
suite: gated_rollout
task: rollout
dataset: {{uri: {repo / 'examples' / 'data' / 'agents' / 'calculator.jsonl'}}}
models:
  - {{name: base, backend: openai, base_url: "http://127.0.0.1:9/v1", model: base}}
  - {{name: cand, backend: openai, base_url: "http://127.0.0.1:9/v1", model: cand}}
environment: {{kind: python, path: "examples.environments.calculator:CalculatorEnvironment"}}
rollout: {{max_turns: 3}}
schedule: null
gates: {{baseline: base, metrics: {{success: {{max_regression: 0.05}}, reward: {{max_regression: 0.1}}}}}}
""")
    suite = load_suite(path)
    assert gateable_metrics(suite) == ["reward", "success"]
    path.write_text(path.read_text().replace("success: {max_regression", "exact_match: {max_regression"))
    with pytest.raises(EvalInputError, match="unknown gated metric 'exact_match'"):
        load_suite(path)


def choice_generations(model: str, picks: list[int], choices: int = 3) -> pd.DataFrame:
    """One multiple-choice answer per item: the picked choice most likely (all choices the same length, so acc
    and acc_norm pick the same)."""
    return pd.DataFrame({
        "sample_id": [f"q{i}" for i in range(len(picks))], "model": model, "error": None,
        "choice_logprobs": [json.dumps([-1.0 if c == pick else -5.0 for c in range(choices)]) for pick in picks],
        "choice_greedy": [json.dumps([c == pick for c in range(choices)]) for pick in picks],
        "choice_tokens": [json.dumps([1] * choices) for _ in picks]})


def test_a_gate_on_acc_through_the_multiple_choice_scores_table(tmp_path: Path) -> None:
    """A multiple_choice suite's ``acc`` gate, from the scores the kind writes (``score_choices``) through the
    check's own reading (``evaluate_release_gate`` over the stored Parquet): McNemar's one-sided p against
    scipy's binomial test on the discordant pairs, the difference against the counts."""
    from eval_pipeline.assets.release_gate import evaluate_release_gate
    from eval_pipeline.resources.parquet_io import ParquetIOManager
    from eval_pipeline.scoring.likelihood_scores import score_choices

    n = 30
    samples = pd.DataFrame({"sample_id": [f"q{i}" for i in range(n)], "reference": "0",
                            "choices": json.dumps(["aa", "bb", "cc"])})
    base_right = set(range(25))                                  # 25 of 30
    cand_right = set(range(10)) | {25, 26, 27}                   # 13 of 30: b = 3, c = 15 discordant pairs
    folder = tmp_path / "out" / "multiple_choice_gated" / "scores"
    folder.mkdir(parents=True)
    for model, right in (("base", base_right), ("cand", cand_right)):
        scores = score_choices(samples, choice_generations(model, [0 if i in right else 1 for i in range(n)]))
        assert sorted(scores["scorer"].unique()) == ["acc", "acc_norm"]
        scores.to_parquet(folder / f"{model}.parquet")
    (tmp_path / "data.jsonl").write_text("")
    suite = load_suite(likelihood_suite(tmp_path, "multiple_choice", "acc"))
    gate = evaluate_release_gate(suite, ParquetIOManager(base_path=str(tmp_path / "out")), "cand")
    acc = gate.detail["metrics"]["acc"]
    b, c = len(cand_right - base_right), len(base_right - cand_right)
    assert (acc["n"], acc["test"], acc["unpaired"]) == (n, "mcnemar", 0)
    assert acc["diff"] == pytest.approx((len(cand_right) - len(base_right)) / n)
    assert acc["model_value"] == pytest.approx(13 / 30) and acc["baseline_value"] == pytest.approx(25 / 30)
    assert acc["p_gate"] == pytest.approx(stats.binomtest(b, b + c, 0.5, alternative="less").pvalue)
    assert not gate.passed and gate.reason.startswith("acc: regression -0.4000")
    assert evaluate_release_gate(suite, ParquetIOManager(base_path=str(tmp_path / "out")), "base").passed
