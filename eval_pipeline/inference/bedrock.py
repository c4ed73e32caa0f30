"""The ``bedrock`` backend: Amazon Bedrock's Converse API (foundation models, custom models, inference profiles)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec
from eval_pipeline.inference.aws import AwsSampler, classify_aws_error
from eval_pipeline.inference.backend_registry import Backend, SpecKey
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.model_spec import ModelSpec, SuitePaths
from eval_pipeline.inference.remote import PermanentError

_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


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
    """A Converse request body: messages, system prompts, inferenceConfig and the tools offered (``toolConfig``);
    also a batch record's modelInput."""
    config: dict[str, Any] = {"maxTokens": params.max_tokens, "temperature": params.temperature}
    if params.top_p < 1.0:
        config["topP"] = params.top_p
    if params.stop:
        config["stopSequences"] = list(params.stop)
    body: dict[str, Any] = {"messages": converse_messages(request.messages), "inferenceConfig": config}
    system = [{"text": m.text} for m in request.messages if m.role == "system"]
    if system:
        body["system"] = system
    if request.tools:
        body["toolConfig"] = {"tools": [{"toolSpec": _tool_spec(tool)} for tool in request.tools]}
    return body


def converse_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The conversation in Converse's shape: assistant tool calls as ``toolUse`` blocks, tool results as
    ``toolResult`` blocks of a user message (a run of results, and a user turn right after them, share one user
    message, since Converse wants the roles to alternate). System messages go to ``system``, not here."""
    wire: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        joins = wire and wire[-1]["role"] == role == "user" and (
            message.role == "tool" or any("toolResult" in block for block in wire[-1]["content"]))
        if joins:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})
    return wire


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        result: dict[str, Any] = {"toolUseId": message.tool_call_id or "", "content": [{"text": message.text}]}
        if message.is_error:
            result["status"] = "error"
        return [{"toolResult": result}]
    if not message.tool_calls:
        return [{"text": message.text}]
    blocks: list[dict[str, Any]] = [{"text": message.text}] if message.text else []
    return blocks + [{"toolUse": {"toolUseId": call.id, "name": call.name, "input": _tool_input(call)}}
                     for call in message.tool_calls]


def _tool_input(call: ToolCall) -> dict[str, Any]:
    """The call's arguments as the object Converse wants; arguments that are not a JSON object (a model wrote them
    badly) travel as ``{"_raw": text}`` so the conversation stays as it was."""
    try:
        return call.parsed_arguments()
    except ValueError:
        return {"_raw": call.arguments}


def _tool_spec(tool: ToolSpec) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": tool.name, "inputSchema": {"json": dict(tool.parameters)}}
    if tool.description:
        spec["description"] = tool.description
    return spec


def parse_converse(response: dict[str, Any], model_id: str) -> Completion:
    """A Converse response as a completion (``toolUse`` blocks as tool calls); a shape we cannot read is a
    PermanentError naming the model."""
    try:
        content = response["output"]["message"]["content"]
        texts = [part["text"] for part in content if "text" in part]
        calls = tuple(ToolCall(id=str(part["toolUse"]["toolUseId"]), name=part["toolUse"]["name"],
                               arguments=json.dumps(part["toolUse"].get("input", {}), ensure_ascii=False))
                      for part in content if "toolUse" in part)
        usage = response.get("usage", {})
        stop = response.get("stopReason")
    except (KeyError, TypeError) as exc:
        body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        raise PermanentError(f"model {model_id}: response we cannot parse (missing {exc}); body starts "
                             f"{str(body)[:200]!r}") from exc
    return Completion(output="".join(texts), finish_reason=_STOP_REASONS.get(stop, stop),
                      tokens_in=usage.get("inputTokens"), tokens_out=usage.get("outputTokens"), tool_calls=calls)


def _build_sampler(spec: ModelSpec, suite: SuitePaths | None, samples: object = None) -> Any:
    """A ``BedrockSampler``, or for ``mode: batch`` a ``BedrockBatchSampler`` falling back to it."""
    from eval_pipeline.inference.backend_options import remote_options

    options = remote_options(spec)
    online = BedrockSampler(spec.model or "", region=spec.region, **options)
    if spec.mode != "batch":
        return online
    from eval_pipeline.inference.bedrock_batch import BedrockBatchSampler

    return BedrockBatchSampler(spec.model or "", s3_uri=spec.batch_s3_uri or "", role_arn=spec.batch_role_arn or "",
                               region=spec.region, poll_s=spec.batch_poll_s, min_records=spec.batch_min_records,
                               price=options["price"], online=online)


BACKEND = Backend(
    name="bedrock", build=_build_sampler, remote=True, tools=True, batch=True,
    needs=(SpecKey("model", "a Bedrock model id or inference-profile id"),),
    temperature=(0.0, 1.0),  # the Converse API's inferenceConfig.temperature
)
"""Amazon Bedrock's Converse API (and batch inference jobs), as ``backend_registry`` finds it."""
