"""A SageMaker MLflow ARN as a tracking URI, read by the ``sagemaker-mlflow`` plugin as a user of it gets it.

The plugin (the ``sagemaker`` extra: ``pip install 'eval-pipeline[sagemaker]'``) registers MLflow's ``arn`` scheme.
Its store sends each request to the ARN's region endpoint (``https://<region>.experiments.sagemaker.aws`` for a
tracking server, ``https://mlflow.sagemaker.<region>.app.aws`` for an MLflow app, or
``$SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT``), SigV4-signed with the boto3 session's credentials and routed by an ARN
header. It reads the ARN for the signature and the header from ``mlflow.get_tracking_uri()`` on every request, not
from the client's own URI: a plugin user sets it with ``mlflow.set_tracking_uri(arn)``. The pipeline does the same
for the length of each of its calls to such a store (``arn_tracking_scope``), and puts the previous URI back after.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

SAGEMAKER_EXTRA = "pip install 'eval-pipeline[sagemaker]'"
"""The remedy when the plugin is missing."""
SAGEMAKER_MLFLOW_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-us-gov):sagemaker:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):(?P<account>\d{12}):"
    r"(?P<kind>mlflow-tracking-server|mlflow-app)/(?P<name>[\w.-]+)$")
"""The ARNs the plugin resolves: service ``sagemaker``, partition ``aws`` or ``aws-us-gov``, a tracking server or
an MLflow app."""
ARN_FORM = "arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name> (or mlflow-app/<id>)"

_scope_lock = threading.RLock()
T = TypeVar("T")


def is_arn(uri: str | None) -> bool:
    """Whether ``uri`` is an ARN (the plugin's ``arn`` scheme), well formed or not."""
    return bool(uri) and str(uri).strip().startswith("arn:")


def plugin_installed() -> bool:
    """Whether the ``sagemaker-mlflow`` plugin can be imported (found without importing it: it imports mlflow)."""
    import importlib.util

    try:
        return importlib.util.find_spec("sagemaker_mlflow") is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a half-imported module
        return False


def arn_problem(arn: str) -> str | None:
    """Why MLflow with the plugin cannot use ``arn`` as its tracking URI (a malformed ARN, the plugin missing), or
    None when it can."""
    if not SAGEMAKER_MLFLOW_ARN.match(arn):
        return f"{arn!r} is not a SageMaker MLflow ARN ({ARN_FORM})"
    if not plugin_installed():
        return (f"{arn!r}: MLflow reaches a SageMaker MLflow tracking server through the sagemaker-mlflow plugin, "
                f"which is not installed ({SAGEMAKER_EXTRA}); or give a tracking URI")
    return None


@contextlib.contextmanager
def arn_tracking_scope(tracking_uri: str | None) -> Iterator[None]:
    """While the block runs, MLflow's tracking URI is ``tracking_uri`` when that is an ARN (what the plugin signs
    and routes each request with); the previous URI, and ``$MLFLOW_TRACKING_URI``, are put back after. Any other
    URI: nothing changes. One scope at a time in a process (a lock; nested scopes of one thread are fine)."""
    if not is_arn(tracking_uri):
        yield
        return
    import mlflow

    with _scope_lock:
        previous_env = os.environ.get("MLFLOW_TRACKING_URI")
        previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
        mlflow.set_tracking_uri(str(tracking_uri).strip())
        try:
            yield
        finally:
            mlflow.set_tracking_uri(previous)
            if previous_env is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous_env


def call_with_tracking_uri(tracking_uri: str | None, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` inside ``arn_tracking_scope(tracking_uri)``: a module-level function, so a call
    sent to the logging helper process (pickled) keeps its scope there."""
    with arn_tracking_scope(tracking_uri):
        return function(*args, **kwargs)
