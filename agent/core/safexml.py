"""XML written by other programs, read with the standard library's expat parser: no DOCTYPE.

Neither Robot Framework's output.xml nor a UiPath workflow declares one, and entity declarations
are how "billion laughs" and external-entity files attack XML readers (an entity that expands
without bound, or one that reads another file). So a document that has a DOCTYPE is refused as
soon as the parser meets it, before anything in it is expanded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn
from xml.parsers import expat

__all__ = ["refuse_doctypes"]


def refuse_doctypes(parser: expat.XMLParserType, refuse: Callable[..., NoReturn]) -> None:
    """Make `parser` call `refuse` (which raises) at a DOCTYPE, an entity declaration or a
    reference to an external entity, and never read parameter entities."""
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
