"""The items table of a rollout execution for ``show_results``: one row per task × model × group member."""

from __future__ import annotations

import json

import pandas as pd

from eval_pipeline.data.messages import final_reply

ROLLOUT_ITEM_COLUMNS = ["sample_id", "model", "prompt", "response", "member", "reward", "success", "turns",
                        "termination", "errors"]


def rollout_items(samples: pd.DataFrame, rollouts: pd.DataFrame, judgments: pd.DataFrame | None,
                  explanations: bool) -> pd.DataFrame:
    """The task's prompt, the agent's final reply, the group member, reward, success (1/0), turns, how it ended,
    and for an errored rollout ``reward: <who caused it>: <error>`` (its reward and success are NaN).
    ``judgments`` and ``explanations`` are unused (rollouts are not judged)."""
    prompts = {row.sample_id: _prompt(row.input, row.input_kind) for row in samples.itertuples(index=False)}
    ordered = rollouts.sort_values(["sample_id", "sample_index"], kind="stable")
    failed = ordered["error"].notna()
    errors = [f"reward: {source or 'unknown'}: {error}" if bad else None
              for bad, source, error in zip(failed, ordered["error_source"], ordered["error"], strict=True)]
    return pd.DataFrame({
        "sample_id": ordered["sample_id"].to_numpy(), "model": ordered["model"].to_numpy(),
        "prompt": ordered["sample_id"].map(prompts).to_numpy(),
        "response": [reply if reply is not None else f"(no reply: {error})" if bad else "(no reply)"
                     for reply, bad, error in zip(ordered["messages"].map(final_reply), failed, ordered["error"],
                                                  strict=True)],
        "member": ordered["sample_index"].astype(int).to_numpy(),
        "reward": ordered["reward"].where(~failed).astype(float).to_numpy(),
        "success": ordered["success"].where(~failed).astype(float).to_numpy(),
        "turns": ordered["num_turns"].to_numpy(), "termination": ordered["termination"].to_numpy(),
        "errors": errors,
    }, columns=ROLLOUT_ITEM_COLUMNS)


def _prompt(text: str, kind: str) -> str:
    if kind != "messages":
        return text
    return "\n".join(f"{m['role']}: {m['content']}" for m in json.loads(text))
