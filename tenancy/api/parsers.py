"""The API's JSON parser: a body PostgreSQL and the JSON renderer can take back, or a 400.

`json.loads` accepts things that later end in a 500 rather than a 400:

- a lone UTF-16 surrogate escape (`"\\ud800"`): a valid JSON string that is not valid Unicode.
  It cannot be encoded as UTF-8, so an error message that repeats it (an unknown field name, a
  bad choice) fails to render, and jsonb refuses it (`DataError`);
- nesting deep enough to exhaust Python's stack: about 1,000 levels are a `RecursionError`
  inside the decoder itself, ~330 levels one in any recursive walk of the value later on.

This parser refuses each of them up front, before a view runs. The body's size is bounded by
DATA_UPLOAD_MAX_MEMORY_SIZE: DRF reads JSON through `request.body`, which Django checks (a 413,
see tenancy/api/views.py `bad_request`); the parser checks it again for any other stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import exceptions, parsers

# Levels of arrays and objects a body may nest, the body itself included (a bulk batch is 2:
# the array and its row objects; a JSON column inside a row then has 30 more). Far above any
# real document, far below the depth that exhausts the stack (~330 in a recursive walk).
MAX_JSON_DEPTH = 32

_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON escape of a UTF-16 surrogate (high or low). Only such an escape can put a surrogate in
# the parsed value (the body itself is decoded as strict UTF-8), so bodies without one skip
# the walk for surrogates.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "too_large"


def json_problem(
    value: Any, *, max_depth: int = MAX_JSON_DEPTH, nul: bool = True, surrogates: bool = True
) -> tuple[str, str] | None:
    """(code, message) of why a parsed JSON value cannot be stored and echoed, or None.

    Iterative (a recursive walk is what exhausted the stack): checks the nesting depth, and in
    every key and string U+0000 (jsonb and text columns refuse it) and lone surrogates.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if nul and "\x00" in item:
                return "null_characters", "Null characters (\\u0000) are not allowed."
            if surrogates and _SURROGATE.search(item):
                return (
                    "invalid_unicode",
                    "Invalid Unicode: a lone UTF-16 surrogate (\\ud800-\\udfff) is not a character.",
                )
            continue
        if isinstance(item, Mapping):
            children: Any = [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            return "too_deep", f"Nested deeper than {max_depth} levels of arrays and objects."
        stack.extend((child, depth + 1) for child in children if isinstance(child, str | Mapping | list | tuple))
    return None


class StrictJSONParser(parsers.JSONParser):
    """JSONParser that refuses invalid Unicode, deep nesting and oversized bodies (see above).

    NaN and Infinity are refused as by DRF's strict parser (STRICT_JSON). NUL characters are
    left to the fields (text fields and JSON columns each refuse them with the field's name).
    """

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw: bytes = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE).")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError("JSON parse error - the body is not UTF-8.", code="invalid_unicode") from exc
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError as exc:
            raise exceptions.ParseError(
                f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects.",
                code="too_deep",
            ) from exc
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        problem = json_problem(data, nul=False, surrogates=bool(_SURROGATE_ESCAPE.search(raw)))
        if problem is not None:
            code, message = problem
            raise exceptions.ParseError(f"JSON parse error - {message}", code=code)
        return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON.")
