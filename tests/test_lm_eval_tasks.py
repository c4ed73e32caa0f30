"""lm-eval task YAMLs and prompt templates, fast: templates over an item's fields, few-shot sampling against
``random.Random`` drawn by hand, filters and exact_match against hand-worked values, YAML validation naming the file,
line and key, suites with ``prompt`` (rendered samples, a non-space target delimiter) and the local model's chat
template switch and ``max_length`` prompt budget against transformers called directly."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.likelihood import LoglikelihoodRequest
from eval_pipeline.inference.likelihood_local import LocalLikelihoodScorer
from eval_pipeline.inference.likelihood_runner import choice_request
from eval_pipeline.inference.local import LocalSampler
from eval_pipeline.lm_eval_tasks.fewshot import FewshotContext, first_examples, random_examples
from eval_pipeline.lm_eval_tasks.filters import FilterPipeline
from eval_pipeline.lm_eval_tasks.metrics import exact_match
from eval_pipeline.lm_eval_tasks.task_yaml import load_task_yaml
from eval_pipeline.lm_eval_tasks.templates import PromptTemplate, TemplateProblem
from eval_pipeline.suites import load_suite
from eval_pipeline.tasks.base import suite_samples, task_kind

TASKS = Path(__file__).resolve().parent / "lm_eval_tasks"
DOC = {"question": "Sky?", "choices": ["blue", "green"], "label": 0, "answer": "blue", "n": 3}


# -- templates ------------------------------------------------------------------------------------------------------

def test_a_field_name_gives_the_field_and_anything_else_is_jinja() -> None:
    template = PromptTemplate(doc_to_text="question", doc_to_target="{{ label }}", doc_to_choice="{{ choices }}")
    assert template.text(DOC) == "Sky?"
    assert template.target(DOC) == 0  # a rendered number with choices is an index (lm-eval's literal_eval)
    assert template.choices(DOC) == ["blue", "green"]
    assert template.answer_text(DOC) == "blue"
    rendered = PromptTemplate(doc_to_text="Q: {{ question | regex_replace('\\?', '!') }}\n", doc_to_target="answer")
    assert rendered.text(DOC) == "Q: Sky!\n"  # lm-eval's regex_replace filter; the trailing newline kept
    assert PromptTemplate(doc_to_text="x", doc_to_target="{{ n }}").target(DOC) == "3"  # no choices: text
    assert PromptTemplate(doc_to_text="x", doc_to_target="['a', 'b']").target(DOC) == ["a", "b"]
    assert PromptTemplate(doc_to_text="x", doc_to_choice={"A": "yes", "B": "no"}).choices(DOC) == ["yes", "no"]


def test_a_template_over_a_missing_field_is_a_problem() -> None:
    with pytest.raises(TemplateProblem, match="UndefinedError"):
        PromptTemplate(doc_to_text="{{ nope }}").text(DOC)
    with pytest.raises(TemplateProblem, match="list literal"):
        PromptTemplate(doc_to_text="x", doc_to_choice="{{ question }}").choices(DOC)


# -- few-shot -------------------------------------------------------------------------------------------------------

POOL = [{"q": f"q{i}", "a": f"a{i}"} for i in range(6)]
QA = PromptTemplate(doc_to_text="Q: {{ q }}", doc_to_target="a", fewshot_delimiter="\n##\n", target_delimiter=" ->",
                    description="Do it.\n")


def test_default_sampler_draws_as_random_sample_in_item_order() -> None:
    context = FewshotContext(QA, 2, POOL, seed=7)
    rnd = random.Random(7)  # the reference: one generator, rnd.sample(pool, n) per item in order
    for item in ({"q": "x", "a": "y"}, {"q": "z", "a": "w"}):
        shots = rnd.sample(POOL, 2)
        expected = "Do it.\n" + "".join(f"Q: {s['q']} ->{s['a']}\n##\n" for s in shots) + f"Q: {item['q']}"
        assert context(item) == expected


def test_examples_from_the_evaluated_split_never_include_the_item() -> None:
    rnd = random.Random(1234)
    drawn = rnd.sample(POOL, 3)  # n + 1 drawn, the item removed, the first n kept
    item = drawn[0]
    assert random_examples(random.Random(1234), POOL, 2, item) == [d for d in drawn if d != item][:2]
    assert item not in random_examples(random.Random(1234), POOL, 2, item)
    assert first_examples(random.Random(0), POOL, 2, POOL[0]) == POOL[1:3]
    assert first_examples(random.Random(0), POOL, 2, None) == POOL[:2]


def test_too_few_examples_is_a_problem() -> None:
    with pytest.raises(TemplateProblem, match="3 few-shot examples asked for, the pool has 3"):
        FewshotContext(QA, 3, POOL[:3], same_split=True)


# -- filters and exact_match ----------------------------------------------------------------------------------------

def test_filters_as_lm_eval_defines_them() -> None:
    regex = FilterPipeline.of("strict", [("regex", {"regex_pattern": r"#### (\-?[0-9\.\,]+)"}), ("take_first", {})])
    assert regex(["so #### 42 and #### 7"]) == "42"
    assert regex(["no number"]) == "[invalid]"
    groups = FilterPipeline.of("g", [("regex", {"regex_pattern": r"(A)|(B)", "group_select": -1})])
    assert groups(["A then B"]) == "B"  # a tuple match: its first non-empty group
    assert FilterPipeline.of("f", [("regex", {"regex_pattern": "x", "fallback": "?"})])(["y"]) == "?"
    loose = FilterPipeline.of("l", [("remove_whitespace", {}), ("uppercase", {}), ("take_first", {})])
    assert loose(["  ab c \n", "ignored"]) == "AB C"
    assert FilterPipeline.of("lower", [("lowercase", {})])(["AbC"]) == "abc"


def test_exact_match_options() -> None:
    assert exact_match("Paris", ["paris"]) == 0.0
    assert exact_match("Paris", ["paris"], ignore_case=True) == 1.0
    assert exact_match("paris!", ["paris"], ignore_punctuation=True) == 1.0
    assert exact_match("route 66", ["route"], ignore_numbers=True) == 0.0  # the space stays
    assert exact_match("route 66", ["route "], ignore_numbers=True) == 1.0
    assert exact_match("The answer: 4", ["4"], regexes_to_ignore=["^The answer: "]) == 1.0
    assert exact_match("b", ["a", "b"]) == 1.0  # any of several golds


# -- task YAML validation -------------------------------------------------------------------------------------------

def test_the_three_hand_written_tasks_load() -> None:
    mc, gen, ppl = (load_task_yaml(TASKS / f"{name}.yaml") for name in ("tiny_mc", "tiny_gen", "tiny_ppl"))
    assert (mc.output_type, mc.fewshot.num_fewshot, mc.fewshot.split, list(mc.metrics)) == \
        ("multiple_choice", 2, "train", ["acc", "acc_norm"])
    assert gen.generation.until == ("\n\n", "Q:") and gen.generation.max_gen_toks == 8
    assert [f.name for f in gen.filters] == ["strict", "loose"]
    assert gen.metrics["exact_match"] == {"ignore_case": True, "ignore_punctuation": True}
    assert ppl.output_type == "loglikelihood_rolling" and ppl.filters[0].name == "none"


def bad_task(tmp_path: Path, text: str) -> Path:
    (tmp_path / "data.jsonl").write_text('{"q": "x", "a": "y"}\n')
    path = tmp_path / "task.yaml"
    path.write_text("task: t\ndataset_path: json\ndataset_kwargs: {data_files: {test: data.jsonl}}\n"
                    "test_split: test\ndoc_to_text: q\ndoc_to_target: a\n" + text)
    return path


@pytest.mark.parametrize(("extra", "line", "field", "message"), [
    ("process_results: x\n", 7, "process_results", "unsupported key 'process_results'"),
    ("output_type: loglikelihood\n", 7, "output_type", "output_type 'loglikelihood' is not supported"),
    ("filter_list:\n  - name: f\n    filter:\n      - function: majority_vote\n", 10, "filter_list.0.filter.0",
     "filter function 'majority_vote' is not supported; supported: lowercase, regex, remove_whitespace"),
    ("filter_list:\n  - name: f\n    filter:\n      - {function: regex, pattern: x}\n", 10,
     "filter_list.0.filter.0", "filter 'regex' has no option 'pattern'"),
    ("metric_list:\n  - metric: bleu\n", 8, "metric_list.0.metric", "metric 'bleu' is not supported"),
    ("metric_list:\n  - {metric: exact_match, aggregation: median}\n", 8, "metric_list.0.aggregation",
     "aggregates by mean here"),
    ("metric_list:\n  - {metric: exact_match, ignore_spaces: true}\n", 8, "metric_list.0.ignore_spaces",
     "has no option 'ignore_spaces'"),
    ("fewshot_config: {sampler: balanced}\n", 7, "fewshot_config.sampler", "sampler 'balanced' is not supported"),
    ("fewshot_config: {process_docs: x}\n", 7, "fewshot_config.process_docs", "unsupported key 'process_docs'"),
    ("generation_kwargs: {until: [x], top_k: 3}\n", 7, "generation_kwargs.top_k", "unsupported key 'top_k'"),
    ("repeats: 4\n", 7, "repeats", "only repeats: 1"),
    ("doc_to_choice: '{{ q'\n", 7, "doc_to_choice", "not a valid Jinja template"),
])
def test_unsupported_or_bad_keys_name_the_yaml_line_and_key(tmp_path: Path, extra: str, line: int, field: str,
                                                            message: str) -> None:
    with pytest.raises(EvalInputError) as caught:
        load_task_yaml(bad_task(tmp_path, extra))
    assert caught.value.file and caught.value.file.endswith("task.yaml")
    assert (caught.value.line, caught.value.field) == (line, field)
    assert message in caught.value.reason


def test_data_from_the_hub_or_python_functions_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("task: t\ndataset_path: cais/mmlu\ntest_split: test\ndoc_to_text: q\ndoc_to_target: a\n")
    with pytest.raises(EvalInputError, match=r"dataset_path 'cais/mmlu' is not supported.*local folder"):
        load_task_yaml(path)
    path.write_text("task: t\ndataset_path: json\ndataset_kwargs: {data_files: {test: gone.jsonl}}\n"
                    "test_split: test\ndoc_to_text: q\ndoc_to_target: a\n")
    with pytest.raises(EvalInputError, match=r"gone\.jsonl not found"):
        load_task_yaml(path)
    path.write_text("task: t\ndoc_to_text: !function utils.doc_to_text\n")
    with pytest.raises(EvalInputError, match=r"hub.yaml:2: field 'doc_to_text': !function"):
        load_task_yaml(path)


def test_a_local_folder_of_split_files_is_a_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text('{"q": "x", "a": "y"}\n')
    path = tmp_path / "t.yaml"
    path.write_text("task: t\ndataset_path: data\ntest_split: test\ndoc_to_text: q\ndoc_to_target: a\n")
    assert set(load_task_yaml(path).splits) == {"train", "test"}


# -- suites ---------------------------------------------------------------------------------------------------------

def project(tmp_path: Path, body: str, rows: list[dict[str, object]], model_dir: str = "m") -> Path:
    (tmp_path / "evals").mkdir(exist_ok=True)
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = f"{{name: tiny, backend: local, model: {model_dir}, chat_template: false, max_length: 48}}"
    path = tmp_path / "evals" / "s.yaml"
    path.write_text(f"suite: s\ndataset: {{uri: items.jsonl}}\nmodels: [{model}]\n{body}")
    return path


ROWS = [{"id": f"r{i}", "question": f"What is {i}+{i}?", "answer": str(2 * i), "options": [str(2 * i), "7"],
         "category": "even" if i % 2 == 0 else "odd"} for i in range(5)]


def test_a_generate_suite_renders_its_prompt_with_examples_from_its_own_items(tmp_path: Path) -> None:
    suite = load_suite(project(tmp_path, "prompt:\n  doc_to_text: \"Q: {{ question }}\\nA:\"\n"
                                         "  doc_to_target: answer\n  num_fewshot: 2\n  fewshot_seed: 3\n"
                                         "breakdown_keys: [category]\n", ROWS))
    samples = suite_samples(suite)
    rnd = random.Random(3)
    for row, sample in zip(ROWS, samples.itertuples(), strict=True):
        shots = [r for r in rnd.sample(ROWS, 3) if r != row][:2]
        expected = "".join(f"Q: {s['question']}\nA: {s['answer']}\n\n" for s in shots) + f"Q: {row['question']}\nA:"
        assert (sample.sample_id, sample.input, sample.reference) == (row["id"], expected, row["answer"])
    assert json.loads(samples["metadata"][0])["category"] == "even"


def test_a_multiple_choice_prompt_with_its_own_target_delimiter(tmp_path: Path, tiny_model_dir: str) -> None:
    suite = load_suite(project(tmp_path, "task: multiple_choice\nprompt:\n  doc_to_text: '{{ question }}'\n"
                                         "  doc_to_choice: options\n  doc_to_target: answer\n"
                                         "  target_delimiter: ' =>'\n", ROWS, tiny_model_dir))
    samples = suite_samples(suite)
    assert samples["reference"].tolist() == ["0"] * 5 and json.loads(samples["choices"][1]) == ["2", "7"]
    produced = task_kind(suite).produce(suite, suite.models[0], samples, None, lambda _: None)
    scorer = LocalLikelihoodScorer(tiny_model_dir, max_length=48)
    for row, sample in zip(produced.frame.itertuples(), samples.itertuples(), strict=True):
        choices = json.loads(sample.choices)
        expected = scorer.loglikelihood([LoglikelihoodRequest(sample.input, " =>" + c) for c in choices])
        assert json.loads(row.choice_logprobs) == pytest.approx([s.logprob for s in expected], rel=1e-6)
    assert choice_request("q", "a") == LoglikelihoodRequest("q ", "a")  # the space keeps its old request key


@pytest.mark.parametrize(("body", "field", "message"), [
    ("prompt:\n  doc_to_text: '{{ question '\n", "prompt.doc_to_text", "not a valid Jinja template"),
    ("task: multiple_choice\nprompt: {doc_to_text: question}\n", "(top level)", "needs doc_to_choice"),
    ("prompt: {doc_to_text: question, num_fewshot: 2}\n", "prompt", "few-shot examples need doc_to_target"),
    ("task: perplexity\nprompt: {doc_to_text: question, doc_to_target: answer, num_fewshot: 1}\n", "(top level)",
     "without few-shot examples"),
])
def test_bad_prompts_are_refused_at_load(tmp_path: Path, body: str, field: str, message: str) -> None:
    with pytest.raises(EvalInputError) as caught:
        load_suite(project(tmp_path, body, ROWS))
    assert caught.value.field == field and message in caught.value.reason


def test_a_suite_naming_a_bad_task_yaml_names_the_yaml_and_its_key(tmp_path: Path) -> None:
    task = bad_task(tmp_path, "include: base.yaml\n")
    (tmp_path / "evals").mkdir()
    path = tmp_path / "evals" / "s.yaml"
    path.write_text(f"suite: s\nlm_eval: {{task: {task}}}\nmodels: [{{name: m, backend: local, model: m}}]\n")
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    assert "task.yaml:7: field 'include': unsupported key 'include'" in str(caught.value)
    good = tmp_path / "evals" / "g.yaml"
    good.write_text(f"suite: g\nlm_eval: {{task: {TASKS / 'tiny_gen.yaml'}, num_fewshot: 0}}\n"
                    "models: [{name: m, backend: local, model: m}]\n")
    suite = load_suite(good)
    assert suite.task == "lm_eval" and suite.dataset.uri.endswith("tiny_gen.yaml")
    samples = suite_samples(suite)
    assert samples["input"][0] == "Q: What colour is the sky?\nA:" and samples["sample_id"].tolist()[:2] == ["0", "1"]


def test_chat_template_and_max_length_belong_to_the_local_backend(tmp_path: Path) -> None:
    path = tmp_path / "evals" / "s.yaml"
    path.parent.mkdir()
    path.write_text("suite: s\ndataset: {uri: d.jsonl}\n"
                    "models: [{name: b, backend: bedrock, model: amazon.nova-micro-v1:0, chat_template: false}]\n")
    with pytest.raises(EvalInputError, match="settings of the local backend"):
        load_suite(path)


# -- the local model: chat template switch, prompt budget -----------------------------------------------------------

def ask(text: str) -> GenerationRequest:
    return GenerationRequest("s", 0, ({"role": "user", "content": text},))  # type: ignore[arg-type]


def test_chat_template_off_reads_plain_text_without_special_tokens(tiny_model_dir: str) -> None:
    params = GenerationParams(max_tokens=3)
    plain = LocalSampler(tiny_model_dir, chat_template=False)
    chat = LocalSampler(tiny_model_dir, chat_template=True)
    auto = LocalSampler(tiny_model_dir)
    tokenizer = plain.tokenizer
    text = "The capital of France is"
    [off], [on], [default] = (s.generate([ask(text)], params) for s in (plain, chat, auto))
    assert off.tokens_in == len(tokenizer(text, add_special_tokens=False)["input_ids"])
    templated = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                              add_generation_prompt=True)
    assert on.tokens_in == default.tokens_in == len(tokenizer(templated, add_special_tokens=False)["input_ids"])
    assert plain.identity() != auto.identity() and chat.identity() != auto.identity()  # separate cache keys


def test_chat_template_on_without_one_fails_that_request(tiny_model_no_template_dir: str) -> None:
    [answer] = LocalSampler(tiny_model_no_template_dir, chat_template=True).generate([ask("hi")], GenerationParams())
    assert answer.error is not None and "has none" in answer.error


def test_max_length_keeps_the_prompts_last_tokens(tiny_model_dir: str) -> None:
    import torch

    sampler = LocalSampler(tiny_model_dir, chat_template=False, max_length=12)
    text = "Evaluation pipelines measure models on suites of samples. The capital of France is"
    [answer] = sampler.generate([ask(text)], GenerationParams(max_tokens=4))
    ids = sampler.tokenizer(text, add_special_tokens=False)["input_ids"][-8:]  # 12 - 4 new tokens, as lm-eval cuts
    assert answer.tokens_in == 8
    model = sampler.model
    with torch.inference_mode():
        output = model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False,
                                pad_token_id=sampler.tokenizer.pad_token_id)
    assert answer.output == sampler.tokenizer.decode(output[0, len(ids):], skip_special_tokens=True)
    [refused] = LocalSampler(tiny_model_dir, max_length=4).generate([ask(text)], GenerationParams(max_tokens=4))
    assert refused.error is not None and "leaves no room" in refused.error


def test_score_rows_name_the_filter(tmp_path: Path) -> None:
    from eval_pipeline.lm_eval_tasks.answers import score_answers

    task = load_task_yaml(TASKS / "tiny_gen.yaml")
    samples = pd.DataFrame({"sample_id": ["0"], "reference": ["ea."],
                            "metadata": [json.dumps({"lm_eval_golds": ["ea."]})]})
    generations = pd.DataFrame({"sample_id": ["0", "0"], "model": ["m", "m"], "sample_index": [0, 1],
                                "request_hash": ["h", "i"], "output": [" EA, then", None],
                                "error": [None, "boom"]})
    scores = score_answers(task, samples, generations)
    ok = scores[scores["sample_index"] == 0].set_index("scorer")
    assert ok.loc["exact_match.strict", "extracted"] == "then"  # [a-z]+ is case-sensitive: "EA" is skipped
    assert ok.loc["exact_match.loose", "extracted"] == "ea, then" and ok.loc["exact_match.loose", "score"] == 0.0
    failed = scores[scores["sample_index"] == 1]
    assert failed["score"].isna().all() and failed["error"].str.contains("boom").all()


def test_fewshot_config_samples_first_n_and_example_overrides(tmp_path: Path) -> None:
    from eval_pipeline.lm_eval_tasks.task_samples import lm_eval_samples

    path = bad_task(tmp_path, "num_fewshot: 2\nfewshot_config:\n  sampler: first_n\n"
                              "  samples: [{q: s1, a: t1}, {q: s2, a: t2}, {q: s3, a: t3}]\n"
                              "  doc_to_text: 'EX {{ q }}'\n  fewshot_delimiter: ' | '\n")
    samples = lm_eval_samples(load_task_yaml(path))
    assert samples["input"].tolist() == ["EX s1 t1 | EX s2 t2 | x"]
    assert lm_eval_samples(load_task_yaml(path), num_fewshot=0)["input"].tolist() == ["x"]
    with_split = bad_task(tmp_path, "fewshot_split: test\nnum_fewshot: 1\nfewshot_config: {samples: [{q: s, a: t}]}\n")
    with pytest.raises(EvalInputError, match="1 few-shot examples asked for, the pool has 1"):
        lm_eval_samples(load_task_yaml(with_split))  # the split wins over samples, as in lm-eval: one item, itself


def test_a_rolling_task_scores_doc_to_target(tmp_path: Path) -> None:
    from eval_pipeline.lm_eval_tasks.task_samples import lm_eval_samples

    samples = lm_eval_samples(load_task_yaml(TASKS / "tiny_ppl.yaml"))
    texts = [json.loads(line)["text"] for line in (TASKS / "corpus.jsonl").read_text().splitlines()]
    assert samples["input"].tolist() == texts and samples["reference"].isna().all()
