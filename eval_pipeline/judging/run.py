"""Judging generations: one judge request per generation × metric (or two per pair of answers, in both orders),
through the same request machinery as generation (cache, concurrency, retries), into JUDGMENTS / PAIRWISE rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from eval_pipeline.data.schemas import JUDGMENTS, PAIRWISE
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest, Sampler
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.runner import complete_requests
from eval_pipeline.judging.metric import JudgeMetric
from eval_pipeline.judging.pairwise import combine_orders, pairwise_messages, parse_preference
from eval_pipeline.judging.prompt import judge_messages
from eval_pipeline.judging.verdict import VerdictParseError, parse_verdict

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class JudgeStats:
    requests: int
    cached: int
    sent: int
    errors: int

    def summary(self) -> str:
        return f"{self.requests} judge requests: {self.cached} from cache, {self.sent} sent, {self.errors} errors"


def prompt_text(text: str, input_kind: str) -> str:
    """A sample's input as the judge reads it: the prompt, or a chat transcript."""
    if input_kind != "messages":
        return text
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in json.loads(text))


Job = tuple[dict[str, object], JudgeMetric, GenerationRequest | None]
"""A judgment to make: its row so far, the metric, and the judge request (None: nothing to judge, an error row)."""


def judge_jobs(samples: pd.DataFrame, generations: pd.DataFrame, metrics: Sequence[JudgeMetric],
               judge_model: str) -> list[Job]:
    """One job per generation × metric, the judge's messages rendered; a failed generation is an error job."""
    items = samples.set_index("sample_id")
    jobs: list[Job] = []
    for generation in generations.itertuples(index=False):
        item = items.loc[generation.sample_id]
        for metric in metrics:
            base = {"sample_id": generation.sample_id, "model": generation.model,
                    "sample_index": generation.sample_index, "metric": metric.name, "judge_model": judge_model}
            if pd.notna(generation.error) or pd.isna(generation.output):
                jobs.append(({**base, "error": f"no answer to judge: {generation.error}"}, metric, None))
                continue
            messages = judge_messages(metric, prompt=prompt_text(item["input"], item["input_kind"]),
                                      prediction=generation.output, ground_truth=_text(item["reference"]))
            jobs.append((base, metric, GenerationRequest(generation.sample_id, int(generation.sample_index),
                                                         messages)))
    return jobs


def run_judgments(samples: pd.DataFrame, generations: pd.DataFrame, metrics: Sequence[JudgeMetric],
                  sampler: Sampler, params: GenerationParams, *, judge_model: str,
                  cache: RequestCache | None = None, on_progress: Progress | None = None,
                  ) -> tuple[pd.DataFrame, JudgeStats]:
    """One row per generation × metric; a failed generation, request or unparseable reply is an error row."""
    jobs = judge_jobs(samples, generations, metrics, judge_model)
    requests = [request for _, _, request in jobs if request is not None]
    done = complete_requests(requests, sampler, params, cache=cache, on_progress=on_progress)
    rows, position = [], 0
    for base, metric, request in jobs:
        if request is None:
            rows.append(base)
            continue
        key, completion = done.keys[position], done.completion(position)
        position += 1
        rows.append({**base, **_usage(completion), "judge_request_hash": key, "cached": key in done.cached,
                     **_verdict(metric, completion)})
    frame = pd.DataFrame(rows, columns=JUDGMENTS.names)
    stats = JudgeStats(requests=len(requests), cached=len([k for k in done.keys if k in done.cached]),
                       sent=done.sent, errors=int(frame["error"].notna().sum()))
    return frame, stats


def run_pairwise(samples: pd.DataFrame, model_generations: pd.DataFrame, baseline_generations: pd.DataFrame,
                 sampler: Sampler, params: GenerationParams, *, judge_model: str,
                 cache: RequestCache | None = None, on_progress: Progress | None = None) -> pd.DataFrame:
    """Each item both models answered, judged twice (model's answer first, then baseline's first)."""
    items = samples.set_index("sample_id")
    pairs = model_generations.merge(baseline_generations, on=["sample_id", "sample_index"],
                                    suffixes=("", "_baseline"))
    jobs: list[tuple[dict[str, object], tuple[GenerationRequest, GenerationRequest] | None]] = []
    for pair in pairs.itertuples(index=False):
        base = {"sample_id": pair.sample_id, "model": pair.model, "baseline": pair.model_baseline,
                "sample_index": pair.sample_index, "judge_model": judge_model}
        failed = [e for e in (pair.error, pair.error_baseline) if pd.notna(e)]
        if failed or pd.isna(pair.output) or pd.isna(pair.output_baseline):
            jobs.append(({**base, "error": f"no answer to compare: {'; '.join(map(str, failed))}"}, None))
            continue
        item = items.loc[pair.sample_id]
        prompt, reference = prompt_text(item["input"], item["input_kind"]), _text(item["reference"])
        orders = tuple(
            GenerationRequest(pair.sample_id, int(pair.sample_index),
                              pairwise_messages(prompt=prompt, answer_a=a, answer_b=b, ground_truth=reference))
            for a, b in ((pair.output, pair.output_baseline), (pair.output_baseline, pair.output)))
        jobs.append((base, orders))
    requests = [r for _, orders in jobs if orders is not None for r in orders]
    done = complete_requests(requests, sampler, params, cache=cache, on_progress=on_progress)
    rows, position = [], 0
    for base, orders in jobs:
        if orders is None:
            rows.append(base)
            continue
        first, second = done.completion(position), done.completion(position + 1)
        hashes = json.dumps(done.keys[position:position + 2])
        position += 2
        rows.append({**base, "judge_request_hashes": hashes, **_preferences(first, second)})
    return pd.DataFrame(rows, columns=PAIRWISE.names)


def judgment_scores(judgments: pd.DataFrame) -> pd.DataFrame:
    """Judgments in the shape of the scores table (the metric as the scorer), for aggregation and item tables."""
    return pd.DataFrame({
        "sample_id": judgments["sample_id"], "model": judgments["model"],
        "sample_index": judgments["sample_index"], "scorer": judgments["metric"], "score": judgments["score"],
        "extracted": judgments["label"], "request_hash": judgments["judge_request_hash"],
        "error": judgments["error"],
    })


def _verdict(metric: JudgeMetric, completion: Completion) -> dict[str, object]:
    if completion.error is not None or completion.output is None:
        return {"error": f"judge request failed: {completion.error}"}
    try:
        verdict = parse_verdict(metric, completion.output)
    except VerdictParseError as exc:
        return {"explanation": completion.output, "error": f"judge reply could not be parsed: {exc}"}
    return {"score": verdict.score, "label": verdict.level.definition, "explanation": verdict.explanation}


def _preferences(model_first: Completion, baseline_first: Completion) -> dict[str, object]:
    picks = []
    for completion in (model_first, baseline_first):
        if completion.error is not None or completion.output is None:
            return {"error": f"judge request failed: {completion.error}"}
        try:
            picks.append(parse_preference(completion.output))
        except VerdictParseError as exc:
            return {"error": f"judge reply could not be parsed: {exc}"}
    outcome = combine_orders(picks[0], picks[1])
    return {"model_first": picks[0], "baseline_first": picks[1], "winner": outcome.winner,
            "consistent": outcome.consistent}


def _usage(completion: Completion) -> dict[str, object]:
    return {"tokens_in": completion.tokens_in, "tokens_out": completion.tokens_out, "cost_usd": completion.cost_usd}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
