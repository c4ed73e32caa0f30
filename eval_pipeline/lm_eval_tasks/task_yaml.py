"""An lm-eval task YAML read and checked whole: every key is one this project runs with lm-eval's meaning, or an
``EvalInputError`` naming the YAML, the key and what is supported. Data comes from local files only
(``dataset_path: json`` with ``dataset_kwargs.data_files``, or a local folder of ``<split>.jsonl`` files)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval_pipeline.errors import EvalInputError
from eval_pipeline.lm_eval_tasks.filters import FILTER_OPTIONS, NO_FILTER, FilterPipeline
from eval_pipeline.lm_eval_tasks.metrics import METRIC_OPTIONS
from eval_pipeline.lm_eval_tasks.templates import PromptTemplate, TemplateProblem, check_fields
from eval_pipeline.lm_eval_tasks.yaml_lines import read_lined_yaml

OUTPUT_METRICS: dict[str, dict[str, str]] = {
    "multiple_choice": {"acc": "mean", "acc_norm": "mean"},
    "generate_until": {"exact_match": "mean"},
    "loglikelihood_rolling": {"word_perplexity": "weighted_perplexity", "byte_perplexity": "weighted_perplexity",
                              "bits_per_byte": "bits_per_byte"},
}
"""Each output type this project runs → its metrics and their aggregation (lm-eval's defaults)."""

DEFAULT_METRICS = {"multiple_choice": ("acc", "acc_norm"), "generate_until": ("exact_match",),
                   "loglikelihood_rolling": ("word_perplexity", "byte_perplexity", "bits_per_byte")}

TOP_KEYS = frozenset({
    "task", "task_alias", "tag", "dataset_path", "dataset_name", "dataset_kwargs", "training_split",
    "validation_split", "test_split", "fewshot_split", "doc_to_text", "doc_to_target", "doc_to_choice",
    "description", "target_delimiter", "fewshot_delimiter", "fewshot_config", "num_fewshot", "output_type",
    "generation_kwargs", "repeats", "filter_list", "metric_list", "metadata", "should_decontaminate",
})
FEWSHOT_KEYS = frozenset({"sampler", "split", "samples", "doc_to_text", "doc_to_target", "doc_to_choice",
                          "fewshot_delimiter", "target_delimiter"})
GENERATION_KEYS = frozenset({"until", "max_gen_toks", "do_sample", "temperature"})
METRIC_KEYS = frozenset({"metric", "aggregation", "higher_is_better"})
DATA_SUFFIXES = (".jsonl", ".json")


@dataclass(frozen=True)
class Generation:
    """``generation_kwargs``: lm-eval's HF defaults (greedy, 256 new tokens) where the YAML leaves them out."""

    until: tuple[str, ...] = ()
    max_gen_toks: int = 256
    temperature: float = 0.0


@dataclass(frozen=True)
class Fewshot:
    num_fewshot: int = 0
    sampler: str = "default"
    split: str | None = None
    samples: tuple[Mapping[str, Any], ...] | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """``fewshot_config`` fields that write the examples differently from the items (doc_to_*, delimiters)."""
    excludes_item: bool = False
    """The examples come from the evaluated split, named as such: an item is never its own example. (When lm-eval
    falls back to the evaluated split by itself, it does not exclude the item; neither does this.)"""


@dataclass(frozen=True)
class LmEvalTask:
    """A checked lm-eval task: where its splits' files are, how items become prompts, how answers are scored."""

    path: str
    name: str
    output_type: str
    template: PromptTemplate
    splits: Mapping[str, tuple[str, ...]]
    """Split name → its local data files."""
    test_split: str
    fewshot: Fewshot
    generation: Generation
    filters: tuple[FilterPipeline, ...]
    metrics: Mapping[str, Mapping[str, Any]]
    """Metric name → its options (``exact_match``'s ``ignore_case`` ...)."""

    @property
    def fewshot_split(self) -> str | None:
        """The split examples come from (lm-eval's rule: ``fewshot_split``, else training, else validation, else
        the evaluated split)."""
        return self.fewshot.split

    def example_template(self) -> PromptTemplate | None:
        if not self.fewshot.overrides:
            return None
        values = {name: getattr(self.template, name) for name in
                  ("doc_to_text", "doc_to_target", "doc_to_choice", "target_delimiter", "fewshot_delimiter",
                   "description")}
        return PromptTemplate(**{**values, **self.fewshot.overrides})


def load_task_yaml(path: str | Path) -> LmEvalTask:
    """Read and check one task YAML (``EvalInputError`` naming the file, line and key of the first problem)."""
    file = Path(path)
    if not file.is_file():
        raise EvalInputError("lm-eval task YAML not found", file=str(file))
    text = file.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if "!function" in line.split("#", 1)[0]:
            raise EvalInputError("!function (Python code in the task's utils.py) is not supported: write the field "
                                 "as a Jinja template over the item's fields", file=str(file), line=number,
                                 field=line.split(":", 1)[0].strip() or None)
    document = read_lined_yaml(text, str(file))
    raw = document.data
    if not isinstance(raw, dict):
        raise EvalInputError("an lm-eval task YAML must be a mapping of keys", file=str(file))

    def fail(message: str, *where: str | int) -> EvalInputError:
        return EvalInputError(message, file=str(file), line=document.line_of([str(w) for w in where]),
                              field=".".join(str(w) for w in where) or None)

    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise fail(f"unsupported key {unknown[0]!r} (this project runs lm-eval tasks with the keys: "
                   f"{', '.join(sorted(TOP_KEYS))}; !function, include, process_docs and process_results are not "
                   "supported)", unknown[0])
    output_type = raw.get("output_type", "generate_until")
    if output_type not in OUTPUT_METRICS:
        raise fail(f"output_type {output_type!r} is not supported; supported: {', '.join(OUTPUT_METRICS)}",
                   "output_type")
    if int(raw.get("repeats", 1)) != 1:
        raise fail("only repeats: 1 is supported (use the suite's generation.num_samples for several samples)",
                   "repeats")
    if raw.get("should_decontaminate"):
        raise fail("decontamination is not supported", "should_decontaminate")
    if raw.get("dataset_name") is not None:
        raise fail("dataset_name is for Hugging Face hub datasets; give local files (dataset_path: json and "
                   "dataset_kwargs.data_files)", "dataset_name")
    splits = _splits(raw, file, fail)
    test_split = raw.get("test_split") or raw.get("validation_split")
    if test_split is None:
        raise fail("the task needs a test_split (or validation_split) to evaluate", "test_split")
    for key in ("training_split", "validation_split", "test_split", "fewshot_split"):
        if raw.get(key) is not None and raw[key] not in splits:
            raise fail(f"split {raw[key]!r} has no data files (splits: {', '.join(splits)})", key)
    for key in ("doc_to_text", "doc_to_target", "doc_to_choice"):
        value = raw.get(key)
        if isinstance(value, str) and value.startswith("!function"):
            raise fail("!function (Python code) is not supported: write a Jinja template", key)
    if output_type == "multiple_choice" and raw.get("doc_to_choice") is None:
        raise fail("a multiple_choice task needs doc_to_choice", "doc_to_choice")
    template = PromptTemplate(
        doc_to_text=raw.get("doc_to_text", ""), doc_to_target=raw.get("doc_to_target"),
        doc_to_choice=raw.get("doc_to_choice"), target_delimiter=str(raw.get("target_delimiter", " ")),
        fewshot_delimiter=str(raw.get("fewshot_delimiter", "\n\n")), description=str(raw.get("description") or ""))
    if template.doc_to_target is None:
        raise fail("the task needs doc_to_target", "doc_to_target")
    try:
        check_fields(template)
    except TemplateProblem as exc:
        raise fail(str(exc), str(exc).split(":", 1)[0]) from None
    fewshot = _fewshot(raw, splits, fail)
    if output_type == "loglikelihood_rolling" and fewshot.num_fewshot:
        raise fail("a loglikelihood_rolling task takes no few-shot examples", "num_fewshot")
    return LmEvalTask(path=str(file.resolve()), name=str(raw.get("task") or file.stem), output_type=output_type,
                      template=template, splits=splits, test_split=str(test_split), fewshot=fewshot,
                      generation=_generation(raw, template, output_type, fail), filters=_filters(raw, fail),
                      metrics=_metrics(raw, output_type, fail))


def _splits(raw: dict[str, Any], file: Path, fail: Any) -> dict[str, tuple[str, ...]]:
    """Split → data files: ``dataset_path: json`` + ``dataset_kwargs.data_files`` (a path, a list, or split →
    path/list), or ``dataset_path`` a local folder of ``<split>.jsonl``/``.json`` files. Relative paths are taken
    from the YAML's folder."""
    dataset_path = raw.get("dataset_path")
    kwargs = raw.get("dataset_kwargs") or {}
    if not isinstance(kwargs, dict) or sorted(set(kwargs) - {"data_files"}):
        extra = sorted(set(kwargs) - {"data_files"}) if isinstance(kwargs, dict) else ["(not a mapping)"]
        raise fail(f"dataset_kwargs supports data_files only, not {extra[0]!r}", "dataset_kwargs")

    def local(value: Any, *where: str) -> tuple[str, ...]:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise fail("must be a path or a list of paths", *where)
        paths = tuple(str(p if p.is_absolute() else file.parent / p) for p in map(Path, names))
        for path in paths:
            if "://" in path or not Path(path).is_file():
                raise fail(f"data file {path} not found (lm-eval tasks run here on local files)", *where)
        return paths

    if dataset_path in ("json", "jsonl"):
        files = kwargs.get("data_files")
        if files is None:
            raise fail("dataset_path json needs dataset_kwargs.data_files", "dataset_kwargs")
        if isinstance(files, dict):
            return {str(split): local(value, "dataset_kwargs", "data_files", str(split))
                    for split, value in files.items()}
        return {"train": local(files, "dataset_kwargs", "data_files")}
    if isinstance(dataset_path, str):
        folder = Path(dataset_path) if Path(dataset_path).is_absolute() else file.parent / dataset_path
        if folder.is_dir():
            found = {p.stem: (str(p),) for p in sorted(folder.iterdir()) if p.suffix in DATA_SUFFIXES}
            if found:
                return found
            raise fail(f"folder {folder} has no <split>.jsonl or <split>.json files", "dataset_path")
    raise fail(f"dataset_path {dataset_path!r} is not supported: use 'json' with dataset_kwargs.data_files, or a "
               "local folder of <split>.jsonl files (Hugging Face hub datasets are not downloaded)", "dataset_path")


def _fewshot(raw: dict[str, Any], splits: Mapping[str, Any], fail: Any) -> Fewshot:
    config = raw.get("fewshot_config") or {}
    if not isinstance(config, dict):
        raise fail("must be a mapping", "fewshot_config")
    unknown = sorted(set(config) - FEWSHOT_KEYS)
    if unknown:
        raise fail(f"unsupported key {unknown[0]!r}; supported: {', '.join(sorted(FEWSHOT_KEYS))}",
                   "fewshot_config", unknown[0])
    sampler = config.get("sampler", "default")
    if sampler not in ("default", "first_n"):
        raise fail(f"sampler {sampler!r} is not supported; supported: default, first_n", "fewshot_config",
                   "sampler")
    num = raw.get("num_fewshot") or 0
    if isinstance(num, bool) or not isinstance(num, int) or num < 0:
        raise fail("must be a whole number of examples, at least 0", "num_fewshot")
    split = config.get("split") or raw.get("fewshot_split")
    if split is not None and split not in splits:
        raise fail(f"split {split!r} has no data files (splits: {', '.join(splits)})", "fewshot_config", "split")
    samples = config.get("samples")
    if samples is not None and not (isinstance(samples, list) and all(isinstance(s, dict) for s in samples)):
        raise fail("must be a list of items (mappings)", "fewshot_config", "samples")
    excludes_item = split is not None and split == raw.get("test_split")  # lm-eval compares with test_split only
    if split is not None:  # lm-eval: a split wins over samples
        samples = None
    elif samples is None:  # lm-eval's fallback: training, then validation, then the test split
        split = next((raw[k] for k in ("training_split", "validation_split", "test_split") if raw.get(k)), None)
    overrides = {k: config[k] for k in ("doc_to_text", "doc_to_target", "doc_to_choice", "fewshot_delimiter",
                                        "target_delimiter") if k in config}
    return Fewshot(num_fewshot=num, sampler=sampler, split=split,
                   samples=tuple(samples) if samples is not None else None, overrides=overrides,
                   excludes_item=excludes_item)


def _generation(raw: dict[str, Any], template: PromptTemplate, output_type: str, fail: Any) -> Generation:
    kwargs = raw.get("generation_kwargs")
    if output_type != "generate_until":
        return Generation()
    if kwargs is None:  # lm-eval's default: greedy, until the few-shot delimiter
        return Generation(until=(template.fewshot_delimiter,))
    if not isinstance(kwargs, dict):
        raise fail("must be a mapping", "generation_kwargs")
    unknown = sorted(set(kwargs) - GENERATION_KEYS)
    if unknown:
        raise fail(f"unsupported key {unknown[0]!r}; supported: {', '.join(sorted(GENERATION_KEYS))}",
                   "generation_kwargs", unknown[0])
    until = kwargs.get("until", [template.fewshot_delimiter])
    until = [until] if isinstance(until, str) else until
    if not isinstance(until, list) or not all(isinstance(u, str) for u in until):
        raise fail("must be a string or a list of strings", "generation_kwargs", "until")
    temperature = float(kwargs.get("temperature", 0.0))
    if kwargs.get("do_sample") and temperature <= 0:
        raise fail("do_sample needs a temperature above 0", "generation_kwargs", "temperature")
    if not kwargs.get("do_sample", False):
        temperature = 0.0
    max_gen_toks = kwargs.get("max_gen_toks", 256)
    if isinstance(max_gen_toks, bool) or not isinstance(max_gen_toks, int) or max_gen_toks < 1:
        raise fail("must be a whole number of tokens, at least 1", "generation_kwargs", "max_gen_toks")
    return Generation(until=tuple(until), max_gen_toks=max_gen_toks, temperature=temperature)


def _filters(raw: dict[str, Any], fail: Any) -> tuple[FilterPipeline, ...]:
    entries = raw.get("filter_list")
    if entries is None:
        return (NO_FILTER,)
    if not isinstance(entries, list) or not entries:
        raise fail("must be a non-empty list of {name, filter} entries", "filter_list")
    pipelines = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"name", "filter"} or not isinstance(entry["filter"], list):
            raise fail("each entry is {name: ..., filter: [{function: ...}, ...]}", "filter_list", index)
        steps = []
        for position, step in enumerate(entry["filter"]):
            function = step.get("function") if isinstance(step, dict) else None
            if function not in FILTER_OPTIONS:
                raise fail(f"filter function {function!r} is not supported; supported: "
                           f"{', '.join(sorted(FILTER_OPTIONS))}", "filter_list", index, "filter", position)
            options = {k: v for k, v in step.items() if k != "function"}
            extra = sorted(set(options) - FILTER_OPTIONS[function])
            if extra:
                raise fail(f"filter {function!r} has no option {extra[0]!r}; its options: "
                           f"{', '.join(sorted(FILTER_OPTIONS[function])) or 'none'}",
                           "filter_list", index, "filter", position)
            steps.append((function, options))
        pipelines.append(FilterPipeline.of(str(entry["name"]), steps))
    return tuple(pipelines)


def _metrics(raw: dict[str, Any], output_type: str, fail: Any) -> dict[str, dict[str, Any]]:
    entries = raw.get("metric_list")
    known = OUTPUT_METRICS[output_type]
    if entries is None:
        return {name: {} for name in DEFAULT_METRICS[output_type]}
    if not isinstance(entries, list) or not entries:
        raise fail("must be a non-empty list of {metric: ...} entries", "metric_list")
    metrics: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        name = entry.get("metric") if isinstance(entry, dict) else None
        if name not in known:
            raise fail(f"metric {name!r} is not supported for output_type {output_type}; supported: "
                       f"{', '.join(known)}", "metric_list", index, "metric")
        if entry.get("aggregation", known[name]) != known[name]:
            raise fail(f"metric {name} aggregates by {known[name]} here, not {entry['aggregation']!r}",
                       "metric_list", index, "aggregation")
        options = {k: v for k, v in entry.items() if k not in METRIC_KEYS}
        extra = sorted(set(options) - METRIC_OPTIONS.get(name, frozenset()))
        if extra:
            raise fail(f"metric {name} has no option {extra[0]!r}; its options: "
                       f"{', '.join(sorted(METRIC_OPTIONS.get(name, ()))) or 'none'}", "metric_list", index, extra[0])
        metrics[name] = options
    return metrics
