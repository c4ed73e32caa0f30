"""The ``bedrock`` backend: Amazon Bedrock's Converse API (foundation models, custom models, inference profiles)."""

from __future__ import annotations

from typing import Any

from eval_pipeline.inference.aws import AwsSampler, classify_aws_error
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.remote import PermanentError

_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class BedrockSampler(AwsSampler):
    backend = "bedrock"
    service = "bedrock-runtime"

    def __init__(self, model_id: str, *, region: str | None = None, **options: Any) -> None:
        super().__init__(region=region, **options)
        self.model_id = model_id

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model_id}

    def call(self, request: GenerationRequest, params: GenerationParams) -> Completion:
        try:
            response = self.client.converse(modelId=self.model_id, **converse_body(request, params))
        except Exception as exc:
            raise classify_aws_error(exc, f"model {self.model_id}") from exc
        return parse_converse(response, self.model_id)


def converse_body(request: GenerationRequest, params: GenerationParams) -> dict[str, Any]:
    """A Converse request body: messages, system prompts and inferenceConfig (also a batch record's modelInput)."""
    config: dict[str, Any] = {"maxTokens": params.max_tokens, "temperature": params.temperature}
    if params.top_p < 1.0:
        config["topP"] = params.top_p
    if params.stop:
        config["stopSequences"] = list(params.stop)
    body: dict[str, Any] = {
        "messages": [{"role": m["role"], "content": [{"text": m["content"]}]}
                     for m in request.messages if m["role"] in ("user", "assistant")],
        "inferenceConfig": config,
    }
    system = [{"text": m["content"]} for m in request.messages if m["role"] == "system"]
    if system:
        body["system"] = system
    return body


def parse_converse(response: dict[str, Any], model_id: str) -> Completion:
    """A Converse response as a completion; a shape we cannot read is a PermanentError naming the model."""
    try:
        texts = [part["text"] for part in response["output"]["message"]["content"] if "text" in part]
        usage = response.get("usage", {})
        stop = response.get("stopReason")
    except (KeyError, TypeError) as exc:
        body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        raise PermanentError(f"model {model_id}: response we cannot parse (missing {exc}); body starts "
                             f"{str(body)[:200]!r}") from exc
    return Completion(output="".join(texts), finish_reason=_STOP_REASONS.get(stop, stop),
                      tokens_in=usage.get("inputTokens"), tokens_out=usage.get("outputTokens"))
