"""The ``sagemaker`` backend: SageMaker real-time endpoints (TGI/LMI, the messages API, or any container)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from eval_pipeline.inference.aws import AwsSampler, classify_aws_error
from eval_pipeline.inference.backend_registry import Backend, SpecKey
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest, refuse_tools
from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths
from eval_pipeline.inference.openai_chat import chat_request, parse_chat_completion
from eval_pipeline.inference.remote import PermanentError


class SageMakerSampler(AwsSampler):
    backend = "sagemaker"
    service = "sagemaker-runtime"

    def __init__(self, endpoint: str, *, request_format: str = "tgi", request_template: str | None = None,
                 response_path: str | None = None, inference_component: str | None = None,
                 region: str | None = None, model: str | None = None, **options: Any) -> None:
        super().__init__(region=region, **options)
        self.endpoint, self.request_format = endpoint, request_format
        self.request_template, self.response_path = request_template, response_path
        self.inference_component, self.model = inference_component, model

    def identity(self) -> dict[str, Any]:
        """Everything that picks the answer: the endpoint (names are per region), its component, how the request
        is written (format, template, model) and where the answer is read from (``response_path``)."""
        return {"backend": self.backend, "endpoint": self.endpoint, "component": self.inference_component,
                "format": self.request_format, "template": self.request_template, "model": self.model,
                "response_path": self.response_path, "region": self.resolved_region()}

    def resolved_region(self) -> str | None:
        """The configured region, else the one the AWS credential chain would use (``AWS_DEFAULT_REGION``, …)."""
        if self.region:
            return self.region
        import boto3

        return boto3.session.Session().region_name

    def check(self, requests: Sequence[GenerationRequest]) -> None:
        """Only the ``messages`` format (OpenAI chat completions) can offer tools; the others refuse them."""
        if self.request_format != "messages":
            refuse_tools(requests, f"sagemaker (request_format {self.request_format!r})")

    def call(self, request: GenerationRequest, params: GenerationParams) -> Completion:
        arguments: dict[str, Any] = {"EndpointName": self.endpoint, "ContentType": "application/json",
                                     "Accept": "application/json",
                                     "Body": json.dumps(self.request_body(request, params)).encode()}
        if self.inference_component:
            arguments["InferenceComponentName"] = self.inference_component
        where = f"endpoint {self.endpoint}" + (f" component {self.inference_component}"
                                               if self.inference_component else "")
        try:
            raw = self.client.invoke_endpoint(**arguments)["Body"].read()
        except Exception as exc:
            raise classify_aws_error(exc, where) from exc
        completion = self.parse(raw)
        if completion is None:
            raise PermanentError(f"{where}: response we cannot parse; body starts {raw[:200]!r}")
        return completion

    def request_body(self, request: GenerationRequest, params: GenerationParams) -> Any:
        if self.request_format == "messages":
            return chat_request(request, params, self.model)
        prompt = prompt_text(request)
        if self.request_format == "custom":
            return render_template(self.request_template or "", {
                "prompt": prompt, "messages": [m.to_dict() for m in request.messages], "max_tokens": params.max_tokens,
                "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed,
                "stop": list(params.stop)})
        parameters: dict[str, Any] = {"max_new_tokens": params.max_tokens, "return_full_text": False,
                                      "details": True}
        if params.stop:
            parameters["stop"] = list(params.stop)
        if params.greedy:
            parameters["do_sample"] = False
        else:
            parameters.update(do_sample=True, temperature=params.temperature, top_p=params.top_p,
                              seed=params.seed)
        return {"inputs": prompt, "parameters": parameters}

    def parse(self, raw: bytes) -> Completion | None:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        if self.request_format == "custom":
            text = dig(body, self.response_path or "")
            return Completion(output=text) if isinstance(text, str) else None
        return parse_chat_completion(body) or parse_generated_text(body)


def parse_generated_text(body: Any) -> Completion | None:
    """TGI's ``[{"generated_text"}]`` or LMI's ``{"generated_text"}``, with TGI ``details`` when present."""
    item = body[0] if isinstance(body, list) and body else body
    if not isinstance(item, dict) or not isinstance(item.get("generated_text"), str):
        return None
    details = item.get("details") or {}
    reason = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}.get(details.get("finish_reason"))
    return Completion(output=item["generated_text"], finish_reason=reason,
                      tokens_out=details.get("generated_tokens"))


def prompt_text(request: GenerationRequest) -> str:
    """The conversation as plain text for containers that take one string (system and turns, blank-line joined)."""
    return "\n\n".join(m.text for m in request.messages)


def render_template(template: str, values: dict[str, Any]) -> Any:
    """``{{name}}`` placeholders replaced by JSON values, then parsed as JSON."""
    text = template
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", json.dumps(value))
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PermanentError(f"request_template is not JSON after filling placeholders: {exc}") from exc


def dig(body: Any, path: str) -> Any:
    """The value at a dotted path (``generated_texts.0``, ``0.generated_text``); None when absent."""
    for part in filter(None, path.replace("[", ".").replace("]", "").split(".")):
        if isinstance(body, list) and part.lstrip("-").isdigit() and -len(body) <= int(part) < len(body):
            body = body[int(part)]
        elif isinstance(body, dict) and part in body:
            body = body[part]
        else:
            return None
    return body


def _build_sampler(spec: ModelSpec, suite: SuitePaths | None, samples: object = None) -> SageMakerSampler:
    from eval_pipeline.inference.backend_options import remote_options

    return SageMakerSampler(spec.endpoint or "", request_format=spec.request_format,
                            request_template=spec.request_template, response_path=spec.response_path,
                            inference_component=spec.inference_component, region=spec.region, model=spec.model,
                            **remote_options(spec))


BACKEND = Backend(
    name="sagemaker", build=_build_sampler, remote=True, tools=True,  # tools: the messages request format
    needs=(SpecKey("endpoint", "the SageMaker endpoint name"),),
    temperature=(0.0, None),  # the container decides
)
"""A SageMaker real-time endpoint, as ``backend_registry`` finds it."""
