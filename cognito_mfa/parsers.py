"""Request parsers of the REST API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with JSON nested too deeply to decode answered as a parse error.

    ``json`` raises RecursionError (not ValueError) for a body such as ``[[[[…]]]]`` a few
    thousand levels deep; DRF lets it through, which would turn bad input into a 500.
    """

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
