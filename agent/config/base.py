"""What every model of the estate file shares: strictness (unknown keys refused, frozen),
durations, regular expressions and bot names."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from ..core.durations import parse_duration
from ..core.vocabulary import BOT_NAME


def _duration(v: Any) -> float:
    return parse_duration(v)


Duration = Annotated[float, BeforeValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _regex(v: Any) -> Any:
    if v is not None:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex {v!r}: {exc}") from None
    return v


Regex = Annotated[str, BeforeValidator(_regex)]


def _bot_name(v: Any) -> Any:
    if isinstance(v, str) and not BOT_NAME.match(v):
        raise ValueError(f"bot name {v!r} must match [a-z0-9_-] (1-64 characters)")
    return v


BotName = Annotated[str, BeforeValidator(_bot_name)]
