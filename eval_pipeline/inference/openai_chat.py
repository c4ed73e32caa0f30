"""Reading and writing the OpenAI chat-completions shape, shared by the ``openai`` and ``sagemaker`` backends."""

from __future__ import annotations

from typing import Any

from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest


def chat_request(request: GenerationRequest, params: GenerationParams, model: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [dict(m) for m in request.messages], "max_tokens": params.max_tokens,
                            "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed}
    if params.stop:
        body["stop"] = list(params.stop)
    if model:
        body["model"] = model
    return body


def parse_chat_completion(body: Any) -> Completion | None:
    """A chat completion as a completion; None when the body does not have that shape."""
    try:
        choice = body["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(text, str):
        return None
    usage = body.get("usage") or {}
    return Completion(output=text, finish_reason=choice.get("finish_reason"),
                      tokens_in=usage.get("prompt_tokens"), tokens_out=usage.get("completion_tokens"))
