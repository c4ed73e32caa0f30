"""The service's value conventions, shared by the self-hosted batch-evaluation API's modules: resource ids, ARNs,
request fingerprints, timestamps, page tokens and JSON without NaN.

A job's or custom evaluator's id is ``<name>-<10 letters and digits>`` (the service's pattern), its ARN
``arn:aws:bedrock-agentcore:<region>:000000000000:<kind>/<id>`` (account ``000000000000``: a self-hosted resource
belongs to no AWS account); a builtin evaluator's ARN is the service's ``arn:aws:bedrock-agentcore:::evaluator/<id>``.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from eval_pipeline.traces.service_errors import ValidationException

ACCOUNT = "000000000000"
MAX_PAGE = 100
_ID_ALPHABET = string.ascii_letters + string.digits


def resource_arn(region: str, kind: str, resource_id: str) -> str:
    """A self-hosted resource's ARN (``kind``: ``batch-evaluation`` or ``evaluator``)."""
    return f"arn:aws:bedrock-agentcore:{region}:{ACCOUNT}:{kind}/{resource_id}"


def builtin_evaluator_arn(evaluator_id: str) -> str:
    return f"arn:aws:bedrock-agentcore:::evaluator/{evaluator_id}"


def new_id(name: str) -> str:
    return f"{name}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(10))}"


def fingerprint(body: Mapping[str, Any]) -> str:
    """What a reused ``clientToken``'s request is compared by."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def timestamp(seconds: float) -> datetime:
    """A stored time (epoch seconds) as the service's datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def page_request(max_results: int, next_token: str | None) -> tuple[int, int | None]:
    """``maxResults`` (1–100) and ``nextToken`` (a number this API returned, or None) checked and read."""
    if not 1 <= int(max_results) <= MAX_PAGE:
        raise ValidationException(f"must be between 1 and {MAX_PAGE}", field="maxResults")
    if next_token is None:
        return int(max_results), None
    if not str(next_token).isdigit():
        raise ValidationException("not a token this API returned", field="nextToken")
    return int(max_results), int(next_token)


def missing(value: Any) -> bool:
    """None or NaN (a null cell of a table)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def finite(value: Any) -> Any:
    """NaN/inf as None, through lists and dicts (the stored JSON and the responses hold no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def jsonable_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows as JSON values (timestamps as ISO text)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))
