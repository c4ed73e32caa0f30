"""The suite files the SDK writes to ``paths.sdk_suites_dir()``, and loading them for the code location."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import yaml

from eval_pipeline import paths
from eval_pipeline.suites.loading import load_suite
from eval_pipeline.suites.spec import Suite

log = logging.getLogger(__name__)


def suite_file(name: str) -> Path:
    return paths.sdk_suites_dir() / f"{name}.yaml"


def write_suite(suite: Suite, header: str) -> Path:
    """Write the suite (atomically) as YAML; returns its path."""
    data = suite.model_dump(mode="json", exclude_defaults=True, exclude={"source_path", "base_dir"})
    data = {"suite": suite.suite, **data}
    path = suite_file(suite.suite)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    text = "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(data, sort_keys=False,
                                                                                  allow_unicode=True)
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def project_suite_names() -> set[str]:
    """Names of the suites in the project's suites folder (``evals/``), read leniently."""
    names = set()
    for path in paths.suites_dir().glob("*.y*ml"):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(raw, dict) and isinstance(raw.get("suite"), str):
            names.add(raw["suite"])
    return names


def load_sdk_suites(exclude: set[str] | None = None) -> list[Suite]:
    """The SDK's suites; a file that does not load, or whose name a project suite already uses, is skipped with
    a warning (one bad SDK file must not take the whole code location down)."""
    suites = []
    for path in sorted(paths.sdk_suites_dir().glob("*.yaml")):
        try:
            suite = load_suite(path)
        except Exception as exc:
            log.warning("skipping SDK suite %s: %s", path, exc)
            continue
        if suite.suite in (exclude or set()):
            log.warning("skipping SDK suite %s: a project suite is named %r", path, suite.suite)
            continue
        suites.append(suite)
    return suites
