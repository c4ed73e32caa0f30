"""How a suite names a deterministic scorer: the metric name, the scorer kind and its options."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SCORER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ScorerSpec(BaseModel):
    """A deterministic scorer; ``name`` is the metric name, ``type`` the scorer (defaults to the name)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=SCORER_NAME_PATTERN)
    type: str | None = None
    pattern: str | None = None
    ignore_case: bool = True

    @property
    def kind(self) -> str:
        return self.type or self.name
