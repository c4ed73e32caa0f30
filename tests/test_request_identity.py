"""A request's identity covers everything that makes its answer differ: two different questions never share a key,
and an answer is never attached to another item. One test per backend, the judge and the likelihood paths."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.bedrock_batch import BedrockBatchSampler
from eval_pipeline.inference.cache import RequestCache, request_keys
from eval_pipeline.inference.likelihood import ContinuationScore, LoglikelihoodRequest, TextScore
from eval_pipeline.inference.likelihood_cache import with_cache
from eval_pipeline.inference.likelihood_runner import run_choice_likelihoods, run_text_likelihoods
from eval_pipeline.inference.local import LocalSampler
from eval_pipeline.inference.planning import plan_choice_likelihoods
from eval_pipeline.inference.precomputed import PrecomputedSampler
from eval_pipeline.inference.runner import run_generations
from eval_pipeline.inference.sagemaker import SageMakerSampler
from eval_pipeline.inference.vllm import VllmSampler
from eval_pipeline.judging import builtin_metric, parse_custom_metrics
from eval_pipeline.judging.likelihood_verdicts import run_likelihood_judgments
from eval_pipeline.judging.run import run_judgments, run_pairwise
from eval_pipeline.scoring.registry import score_generations
from eval_pipeline.suites.spec import ScorerSpec
from tests.fakes.judge import blocks
from tests.test_bedrock_batch import ROLE, batch_env  # noqa: F401 (a fixture)

PARAMS = GenerationParams(max_tokens=8)
UPBEAT = parse_custom_metrics([{"customMetricDefinition": {
    "name": "Upbeat", "instructions": "Is it upbeat?\nPrompt: {{prompt}}\nResponse: {{prediction}}",
    "ratingScale": [{"definition": "Good", "value": {"floatValue": 1}},
                    {"definition": "Poor", "value": {"floatValue": 0}}]}}])[0]


def twin_samples(metadata: list[str] | None = None) -> pd.DataFrame:
    """Two items with the same prompt and different references."""
    return pd.DataFrame({"sample_id": ["a", "b"], "input": ["What is the answer?"] * 2, "input_kind": "text",
                         "reference": ["yes", "no"], "choices": None, "category": None,
                         "metadata": metadata or ["{}", "{}"], "row_hash": ["h1", "h2"]})


# -- precomputed: the answer belongs to the item ---------------------------------------------------------------

def test_precomputed_responses_of_two_items_with_one_prompt_stay_apart(tmp_path: Path) -> None:
    responses = tmp_path / "responses.jsonl"
    responses.write_text('{"id": "a", "response": "yes"}\n{"id": "b", "response": "no"}\n')
    frame, stats = run_generations(twin_samples(), "m", PrecomputedSampler.from_file(str(responses)), PARAMS)
    assert frame.set_index("sample_id")["output"].to_dict() == {"a": "yes", "b": "no"}
    assert frame["request_hash"].nunique() == 2 and stats.generated == 2
    scores = score_generations(twin_samples(), frame, [ScorerSpec(name="exact_match")])
    assert scores["score"].mean() == 1.0  # each item against its own reference (0.0 when both got one answer)


def test_precomputed_responses_from_the_dataset_stay_with_their_item() -> None:
    metadata = [json.dumps({"modelResponses": [{"response": answer, "modelIdentifier": "m"}]})
                for answer in ("yes", "no")]
    samples = twin_samples(metadata)
    frame, _ = run_generations(samples, "m", PrecomputedSampler.from_dataset(samples), PARAMS)
    assert frame["output"].tolist() == ["yes", "no"]


def test_a_response_keyed_by_a_prompt_two_items_share_is_ambiguous(tmp_path: Path) -> None:
    responses = tmp_path / "responses.jsonl"
    responses.write_text('{"prompt": "What is the answer?", "response": "yes"}\n'
                         '{"prompt": "Other?", "response": "fine"}\n')
    sampler = PrecomputedSampler.from_file(str(responses))
    frame, stats = run_generations(twin_samples(), "m", sampler, PARAMS)
    assert frame["output"].isna().all() and stats.errors == 2
    assert frame["error"].str.contains("ambiguous precomputed response").all()
    assert frame["error"].str.contains("'a', 'b'").all()
    single = pd.DataFrame({"sample_id": ["c"], "input": ["Other?"], "input_kind": "text", "row_hash": ["h"]})
    alone, _ = run_generations(single, "m", sampler, PARAMS)  # a prompt one item has is still found by it
    assert alone["output"].tolist() == ["fine"]


def test_request_fields_must_be_request_fields() -> None:
    class Odd:
        request_fields = ("item",)

        def identity(self) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="not GenerationRequest fields"):
        request_keys(Odd(), PARAMS, [GenerationRequest("a", 0, ({"role": "user", "content": "x"},))])


# -- remote and local backends: what picks the answer is in the identity -----------------------------------------

def one_request() -> list[GenerationRequest]:
    return [GenerationRequest("a", 0, ({"role": "user", "content": "hello"},))]


def test_sagemaker_identity_covers_where_the_answer_is_read_and_the_region() -> None:
    def key(**options: Any) -> str:
        sampler = SageMakerSampler("ep", request_format="custom", request_template='{"inputs": {{prompt}}}',
                                   **{"response_path": "0.generated_text", "region": "us-east-1", **options})
        return request_keys(sampler, PARAMS, one_request())[0]

    assert key() != key(response_path="0.details.best_of_sequences.0.generated_text")
    assert key() != key(region="eu-west-1")  # endpoint names are per region: another endpoint
    assert key() == key()


def test_vllm_identity_follows_the_model_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"layers": 2}')
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 64)
    before = VllmSampler(str(tmp_path)).identity()
    (tmp_path / "model.safetensors").write_bytes(b"\1" * 64)  # retrained weights at the same path
    assert VllmSampler(str(tmp_path)).identity() != before


def test_local_identity_covers_the_weights_dtype(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    as_float32 = LocalSampler(str(tmp_path), device="cpu", dtype="float32").identity()
    assert as_float32 != LocalSampler(str(tmp_path), device="cpu", dtype="bfloat16").identity()
    assert as_float32 == LocalSampler(str(tmp_path), device="cpu", dtype="float32", batch_size=2).identity()


def test_bedrock_batch_job_for_another_sample_index_is_another_job(batch_env: Any) -> None:  # noqa: F811
    sampler = BedrockBatchSampler("amazon.nova-micro-v1:0", s3_uri="s3://batch-bucket/evals", role_arn=ROLE,
                                  poll_s=0.01, min_records=1)
    messages = [({"role": "user", "content": f"question {i}"},) for i in range(3)]
    first = sampler.generate([GenerationRequest(f"s{i}", 0, m) for i, m in enumerate(messages)], PARAMS)
    second = sampler.generate([GenerationRequest(f"s{i}", 1, m) for i, m in enumerate(messages)], PARAMS)
    assert len(batch_env.jobs) == 2  # sample 1 was not read back from sample 0's job
    assert [c.output for c in first] == [c.output for c in second] == [f"echo: question {i}" for i in range(3)]


# -- the judge: each answer judged on its own, each reply on its own row -----------------------------------------

class EchoJudge:
    """Rates 'Good' when the prediction contains '!'; counts requests."""

    backend = "echo-judge"

    def __init__(self) -> None:
        self.seen = 0

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: Any = None) -> list[Completion]:
        self.seen += len(requests)
        replies = []
        for request in requests:
            fields = blocks(request.messages[-1].content)
            if "answer_a" in fields:
                replies.append(Completion(output=f"Verdict: {'A' if '!' in fields['answer_a'] else 'B'}"))
            else:
                replies.append(Completion(output=f"Verdict: {'Good' if '!' in fields['prediction'] else 'Poor'}"))
        return replies


def generations(outputs: list[str], model: str = "m") -> pd.DataFrame:
    return pd.DataFrame({"sample_id": ["a", "b"], "model": model, "sample_index": 0, "output": outputs,
                         "error": None})


def test_judge_requests_for_one_prompt_and_different_answers_are_different(tmp_path: Path) -> None:
    judge, cache = EchoJudge(), RequestCache(tmp_path / "judge.sqlite")
    frame, stats = run_judgments(twin_samples(), generations(["great!", "meh"]), [UPBEAT], judge, PARAMS,
                                 judge_model="j", cache=cache)
    assert frame.set_index("sample_id")["label"].to_dict() == {"a": "Good", "b": "Poor"}
    assert frame["judge_request_hash"].nunique() == 2 and judge.seen == 2 and stats.sent == 2
    # the same answers to one prompt with different references are different questions for the judge too
    same, _ = run_judgments(twin_samples(), generations(["same!", "same!"]), [UPBEAT], judge, PARAMS,
                            judge_model="j", cache=cache)
    assert same["label"].tolist() == ["Good", "Good"]


def test_pairwise_replies_land_on_their_own_pair(tmp_path: Path) -> None:
    judge = EchoJudge()
    frame = run_pairwise(twin_samples(), generations(["win!", "lose"]), generations(["lose", "win!"], "base"),
                         judge, PARAMS, judge_model="j", cache=RequestCache(tmp_path / "judge.sqlite"))
    assert frame.set_index("sample_id")["winner"].to_dict() == {"a": "model", "b": "baseline"}


# -- likelihood: keys cover scorer, request kind and text; cached and sent counts are true ------------------------

class CountingScorer:
    """Log-likelihood = minus the continuation's length (per identity ``version``); counts requests."""

    backend = "counting"

    def __init__(self, version: str = "v1") -> None:
        self.version, self.requests = version, 0

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "version": self.version}

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], on_progress: Any = None
                      ) -> list[ContinuationScore]:
        self.requests += len(requests)
        offset = 0.0 if self.version == "v1" else 100.0
        return [ContinuationScore(-float(len(r.continuation)) - offset, False, 1) for r in requests]

    def rolling_loglikelihood(self, texts: Sequence[str], on_progress: Any = None) -> list[TextScore]:
        self.requests += len(texts)
        return [TextScore(-float(len(t)), len(t.split()), len(t.encode()), 0) for t in texts]


def mc_samples() -> pd.DataFrame:
    return pd.DataFrame({"sample_id": ["q1", "q2"], "input": ["Sky is", "Sky is"],
                         "choices": [json.dumps(["blue", "green"]), json.dumps(["red", "a bright blue"])],
                         "row_hash": ["1", "2"]})


def test_likelihood_scores_are_cached_per_request_and_counted(tmp_path: Path) -> None:
    cache, inner = RequestCache(tmp_path / "gen.sqlite"), CountingScorer()
    first_scorer = with_cache(inner, cache)
    first = run_choice_likelihoods(mc_samples(), "m", first_scorer)
    assert inner.requests == 4 and (first_scorer.stats.requests, first_scorer.stats.cached) == (4, 0)
    assert not first["cached"].any()
    again_scorer = with_cache(inner, cache)
    again = run_choice_likelihoods(mc_samples(), "m", again_scorer)
    assert inner.requests == 4 and again_scorer.stats.sent == 0 and again["cached"].all()
    assert again["choice_logprobs"].tolist() == first["choice_logprobs"].tolist()
    assert again["output"].tolist() == ["blue", "red"]  # one question, each item its own choices
    other = with_cache(CountingScorer("v2"), cache)  # another model: nothing shared
    assert json.loads(run_choice_likelihoods(mc_samples(), "m", other)["choice_logprobs"][0]) == [-104.0, -105.0]
    plan = plan_choice_likelihoods(mc_samples(), "m", "counting", scorer=inner, cache=cache)
    assert (plan.requests, plan.cached, plan.to_send) == (4, 4, 0)

    texts = pd.DataFrame({"sample_id": ["t1", "t2"], "input": ["a b", "c d e"], "row_hash": ["1", "2"]})
    run_text_likelihoods(texts, "m", with_cache(inner, cache))
    rolled = with_cache(inner, cache)
    assert run_text_likelihoods(texts, "m", rolled)["cached"].all() and rolled.stats.sent == 0


def test_likelihood_verdicts_are_cached_in_the_judge_cache(tmp_path: Path) -> None:
    cache, judge = RequestCache(tmp_path / "judge.sqlite"), CountingScorer()
    gens = generations(["great!", "meh"])
    frame, stats = run_likelihood_judgments(twin_samples(), gens, [UPBEAT], judge, judge_model="j", cache=cache)
    assert (stats.requests, stats.cached, stats.sent) == (2, 0, 2) and judge.requests == 4
    again, stats = run_likelihood_judgments(twin_samples(), gens, [UPBEAT], judge, judge_model="j", cache=cache)
    assert (stats.requests, stats.cached, stats.sent) == (2, 2, 0) and judge.requests == 4
    assert again["cached"].all() and again["label"].tolist() == frame["label"].tolist()


# -- every stage's cached / generated counts are true: a re-run sends the model nothing -------------------------

def test_a_rerun_sends_nothing_and_every_stage_says_cached(eval_home: Path, tmp_path: Path) -> None:
    from eval_pipeline.execution import run_suite
    from eval_pipeline.instance import local_instance
    from eval_pipeline.suites import load_suite
    from tests.fakes import FakeLLMServer

    project = tmp_path / "p"
    (project / "evals").mkdir(parents=True)
    (project / "qa.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Say {i}", "answer": str(i)})
                                              + "\n" for i in range(4)))
    (project / "mc.jsonl").write_text("".join(json.dumps({"id": f"m{i}", "question": f"Pick {i}",
                                                          "choices": ["a", "b", "c"], "answer": i % 3}) + "\n"
                                              for i in range(4)))
    with FakeLLMServer(answer=lambda prompt, model: prompt.split()[-1]) as server:
        model = f"{{name: served, backend: openai, base_url: '{server.url}/v1', model: m, n_concurrent: 2}}"
        (project / "evals" / "judged.yaml").write_text(
            f"suite: judged\ndataset: {{uri: qa.jsonl}}\nmodels:\n  - {model}\nscorers: [exact_match]\n"
            f"judge: {{model: {model}, builtin_metrics: [Correctness], verdict: likelihood}}\n")
        (project / "evals" / "mc.yaml").write_text(
            f"suite: mc\ntask: multiple_choice\ndataset: {{uri: mc.jsonl}}\nmodels:\n  - {model}\n")
        firsts = {}
        for name in ("judged", "mc"):
            suite = load_suite(project / "evals" / f"{name}.yaml")
            first = run_suite(suite, local_instance())
            assert first.success, first.models[0].error
            firsts[name] = (suite, first)
        sent = server.requests_total
        levels = len(builtin_metric("Correctness").definitions)
        assert sent == 4 + 4 * levels + 4 * 3  # 4 answers, 4 judgments × each level, 4 items × 3 choices
        for name, (suite, first) in firsts.items():
            again = run_suite(suite, local_instance())
            assert again.success, again.models[0].error
            generation = again.models[0].generation
            expected = 4 if name == "judged" else 12
            assert (generation["requests"], generation["cached"], generation["generated"]) == (expected, expected, 0)
            assert first.models[0].generation["generated"] == expected
            pd.testing.assert_frame_equal(again.metrics, first.metrics)
        assert server.requests_total == sent  # nothing reached the model the second time
        judgments = pd.read_parquet(again_path(firsts["judged"][0], "judgments"))
        assert judgments["cached"].all() and judgments["error"].isna().all()


def again_path(suite: Any, stage: str) -> Path:
    from eval_pipeline import paths

    return paths.outputs_dir() / suite.suite / stage / "served.parquet"
