"""What every model of the estate file shares: strictness (unknown keys refused, frozen) and durations."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from ..core.durations import parse_duration


def _duration(v: Any) -> float:
    return parse_duration(v)


Duration = Annotated[float, BeforeValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
