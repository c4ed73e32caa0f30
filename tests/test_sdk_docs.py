"""The SDK documents itself like the seed: every public argument of every evaluator, method and function has a
Google-style docstring entry, and the seeds' own calls bind to the evaluators' signatures."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import eval_pipeline.sdk as sdk
from eval_pipeline.sdk.hyperparameters import RolloutHyperparameters

SECTIONS = ("Args", "Attributes")
PUBLIC = [getattr(sdk, name) for name in sdk.__all__ if name != "EvaluationPipelineExecution"] + [
    RolloutHyperparameters]


def documented_names(doc: str | None) -> set[str]:
    """The names given an entry under the docstring's ``Args:`` / ``Attributes:`` sections (``name: …``,
    ``name (type): …``, ``**name: …``)."""
    names: set[str] = set()
    lines = inspect.cleandoc(doc or "").splitlines()
    in_section, indent = False, 0
    for line in lines:
        header = re.fullmatch(r"(\s*)(\w+):\s*", line)
        if header and header.group(2) in SECTIONS:
            in_section, indent = True, len(header.group(1))
            continue
        if in_section and line.strip() and len(line) - len(line.lstrip()) <= indent:
            in_section = False  # the next section (Returns:, Example:) or prose
        entry = re.match(r"\s+\**(\w+)(?: \([^)]*\))?:\s", line + " ")
        if in_section and entry and len(line) - len(line.lstrip()) == indent + 4:
            names.add(entry.group(1))
    return names


def parameters(function: Callable[..., Any]) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name not in ("self", "cls")]


def public_callables() -> Iterator[tuple[str, Callable[..., Any], str | None]]:
    """(qualified name, callable whose parameters count, the docstring that must document them)."""
    for obj in PUBLIC:
        if not inspect.isclass(obj):
            yield obj.__name__, obj, obj.__doc__
            continue
        if dataclasses.is_dataclass(obj):
            yield obj.__name__, obj, obj.__doc__  # its fields, under Attributes:
        else:
            yield obj.__name__, obj.__init__, obj.__doc__  # the constructor's arguments, in the class docstring
        for attribute, value in vars(obj).items():
            if attribute.startswith("_"):
                continue
            if isinstance(value, classmethod | staticmethod):
                function = value.__func__
            elif inspect.isfunction(value):
                function = value
            else:
                continue
            yield f"{obj.__name__}.{attribute}", function, function.__doc__


def public_properties() -> Iterator[tuple[str, property]]:
    for obj in PUBLIC:
        if inspect.isclass(obj):
            for attribute, value in vars(obj).items():
                if isinstance(value, property) and not attribute.startswith("_"):
                    yield f"{obj.__name__}.{attribute}", value


@pytest.mark.parametrize(("name", "function", "doc"), list(public_callables()),
                         ids=[name for name, _, _ in public_callables()])
def test_every_public_argument_has_a_docstring_entry(name: str, function: Callable[..., Any], doc: str | None) -> None:
    assert doc and doc.strip(), f"{name} has no docstring"
    missing = [p for p in parameters(function) if p not in documented_names(doc)]
    assert not missing, f"{name}: no 'Args:' entry for {missing}"


@pytest.mark.parametrize(("name", "prop"), list(public_properties()), ids=[name for name, _ in public_properties()])
def test_every_public_property_has_a_docstring(name: str, prop: property) -> None:
    assert prop.__doc__ and prop.__doc__.strip(), f"{name} has no docstring"


def test_the_entries_say_what_the_seed_asks_for() -> None:
    """The arguments a seed reader looks for first: what they are, their default, an example."""
    judge = " ".join((sdk.LLMAsJudgeEvaluator.__doc__ or "").split())
    for phrase in ("limit: Evaluate only the dataset's first ``limit`` items", "Default: None, every item",
                   "judge_verdict: How the judge's rating is read", '``"generate"``', '``"likelihood"``',
                   "mlflow_resource_arn:", "s3_output_path: The seed's name for ``output_path``",
                   "evaluate_base_model:", "Default: True, as the seed's"):
        assert phrase in judge, phrase
    rollout = " ".join((sdk.MultiTurnRLEvaluator.__doc__ or "").split())
    for phrase in ("hyperparameters: Initial values", "eval_group_size (4)", "stopping_condition:",
                   "in (0, 259200]", "Default: 86400"):
        assert phrase in rollout, phrase


def test_the_checker_finds_a_missing_entry() -> None:
    """The docstring check can fail: an undocumented argument, or one mentioned only in prose, is reported."""

    def documented(limit: int, offset: int) -> None:
        """Page.

        Args:
            limit: How many.

        Returns:
            Nothing; ``offset`` is named only here.
        """

    assert documented_names(documented.__doc__) == {"limit"}
    assert [p for p in parameters(documented) if p not in documented_names(documented.__doc__)] == ["offset"]


SEED_LLM_AS_JUDGE_CALL = {
    "model": "amazon.nova-lite-v1:0", "evaluator_model": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "dataset": "s3://bucket/gen_qa.jsonl", "builtin_metrics": ["Completeness", "Faithfulness"],
    "custom_metrics": "[]", "mlflow_resource_arn": "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/x",
    "s3_output_path": "s3://bucket/eval/", "evaluate_base_model": False,
}
"""The keyword arguments of the seed notebook's ``LLMAsJudgeEvaluator(...)`` call (002, Step 2)."""
SEED_MULTI_TURN_CALL = {
    "model": "amazon.nova-micro-v1:0", "dataset": "s3://bucket/eval-prompts.jsonl",
    "s3_output_path": "s3://bucket/mtrl-eval-output/", "mlflow_resource_arn": None, "mlflow_experiment_name": "x",
    "mlflow_run_name": "x", "agent_config": "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/a",
    "agent_qualifier": "PROD", "evaluate_base_model": False, "stopping_condition": 86400,
    "tags": [{"Key": "k", "Value": "v"}],
}
"""The seed's ``MultiTurnRLEvaluator`` fields that mean something off AWS (000)."""


@pytest.mark.parametrize(("evaluator", "call"), [(sdk.LLMAsJudgeEvaluator, SEED_LLM_AS_JUDGE_CALL),
                                                 (sdk.MultiTurnRLEvaluator, SEED_MULTI_TURN_CALL)])
def test_the_seeds_calls_bind(evaluator: type, call: dict[str, Any]) -> None:
    inspect.signature(evaluator).bind(**call)  # TypeError if an argument the seed passes is not taken
