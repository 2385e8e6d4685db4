"""Structured output: an OpenAI `response_format` turned into a per-token mask, so the answer is JSON that
validates against the given schema.

lm-format-enforcer (a JSON-schema character parser walked over a prefix tree of the vocabulary) does the masking.
Its own transformers integration does not import under transformers 5 (`transformers.tokenization_utils` is
gone), so the vocabulary table it needs is built here from our codec, the way that integration builds it.
Schemas are checked up front: keywords the mask cannot enforce (number bounds on non-integers, `uniqueItems`,
`format`, ...) are refused by name rather than silently ignored. Bounded integers (`minimum`/`maximum`, at most
MAX_INTEGER_CHOICES values) are enforced by rewriting them to an `enum`. When `max_new_tokens` runs out first the
answer stops where it is, with finish reason "length", and may not parse: no tokens are reserved to close it.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from modelyard.errors import UserError

MAX_INTEGER_CHOICES = 1000
# lm-format-enforcer's default cap on an array without maxItems (docs/generation_quality.md); it drops the cap
# when minItems reaches it, and the array then runs on until max_tokens cuts it off
MAX_ARRAY_ITEMS = 20
_ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "strict"}
_SUPPORTED = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "minLength",
    "maxLength",
    "pattern",
    "anyOf",
    "$ref",
    "$defs",
    "definitions",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
}
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}


class SchemaError(UserError):
    """A response_format the server cannot enforce; the message names the keyword and where it is."""


class Codec(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


def response_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema to enforce for an OpenAI-style `response_format` (None: free text), checked and with
    bounded integers rewritten to enums. Raises SchemaError naming what is wrong."""
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind != "json_schema":
        raise SchemaError(f"response_format.type '{kind}' is not one of text, json_object, json_schema")
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise SchemaError("response_format.json_schema.schema must be a JSON schema object")
    schema = spec["schema"]
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError as InvalidSchema

    try:
        Draft202012Validator.check_schema(schema)
    except InvalidSchema as err:
        where = "/".join(str(p) for p in err.path) or "(root)"
        raise SchemaError(
            f"response_format.json_schema.schema is not a valid JSON schema at {where}: {err.message}"
        ) from None
    return _rewrite(schema, "#", schema)


def _rewrite(schema: Any, where: str, root: dict[str, Any]) -> Any:
    """`schema` with every sub-schema checked against what the mask enforces; bounded integers become enums."""
    if not isinstance(schema, dict):
        raise SchemaError(f"response_format schema at {where}: boolean schemas are not supported")
    unsupported = sorted(set(schema) - _SUPPORTED)
    if unsupported:
        raise SchemaError(
            f"response_format schema at {where}: unsupported keyword(s) {', '.join(unsupported)}",
            f"supported: {', '.join(sorted(_SUPPORTED - _ANNOTATIONS))}",
        )
    types = schema.get("type")
    for name in [types] if isinstance(types, str) else types or []:
        if name not in _TYPES:
            raise SchemaError(f"response_format schema at {where}: unknown type '{name}'")
    out = dict(schema)
    if "const" in schema:  # the mask enforces a constant as an enum of one value
        out = {**{k: v for k, v in schema.items() if k != "const"}, "enum": [schema["const"]]}
    if any(k in schema for k in _BOUNDS):
        out = _bounded_integer(out, where)
    if "enum" in out:
        keyword = "const" if "const" in schema else "enum"
        _check_choices(out["enum"], where, keyword)
        _check_choice_types(out["enum"], out.get("type"), where, keyword)
    _check_ranges(schema, where)
    if "minItems" in schema and "maxItems" not in schema:  # minItems 20: the cap stays
        out["maxItems"] = MAX_ARRAY_ITEMS
    _check_required(schema, where)
    if "pattern" in schema:
        out["pattern"] = _check_pattern(schema, where)
    if "$ref" in schema:
        _check_ref(schema["$ref"], where, root)
    for key in ("properties", "$defs", "definitions"):
        if key in schema:
            out[key] = {name: _rewrite(sub, f"{where}/{key}/{name}", root) for name, sub in schema[key].items()}
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = _rewrite(schema["additionalProperties"], f"{where}/additionalProperties", root)
    if "items" in schema:
        out["items"] = _rewrite(schema["items"], f"{where}/items", root)
    if "anyOf" in schema:
        out["anyOf"] = [_rewrite(sub, f"{where}/anyOf/{i}", root) for i, sub in enumerate(schema["anyOf"])]
    return out


def _check_choices(values: list[Any], where: str, keyword: str) -> None:
    """The mask offers the values of an enum (or const) as text: all strings, or all finite numbers."""
    if not values:
        raise SchemaError(f"response_format schema at {where}: {keyword} leaves no value to answer with")
    strings = all(isinstance(v, str) for v in values)
    numbers = all(_is_number(v) and math.isfinite(v) for v in values)
    if not (strings or numbers):
        raise SchemaError(
            f"response_format schema at {where}: {keyword} values must be all strings or all finite numbers",
            'for objects, arrays, booleans or null give "type" and "properties" instead',
        )


def _check_choice_types(values: list[Any], types: Any, where: str, keyword: str) -> None:
    """Every enum (or const) value is of the schema's `type`: a value of another type could never be answered."""
    if types is None:
        return
    allowed = {types} if isinstance(types, str) else set(types)
    for value in values:
        kind = "string" if isinstance(value, str) else "integer" if float(value).is_integer() else "number"
        if kind not in allowed and not (kind == "integer" and "number" in allowed):
            raise SchemaError(f"response_format schema at {where}: {keyword} value {value!r} is not of type {types}")


def _check_ranges(schema: dict[str, Any], where: str) -> None:
    """minLength <= maxLength and minItems <= maxItems: otherwise no answer satisfies the schema."""
    for low, high in (("minLength", "maxLength"), ("minItems", "maxItems")):
        if low in schema and high in schema and schema[low] > schema[high]:
            raise SchemaError(
                f"response_format schema at {where}: {low} {schema[low]} is more than {high} {schema[high]}"
            )
    if "maxItems" not in schema and schema.get("minItems", 0) > MAX_ARRAY_ITEMS:
        raise SchemaError(
            f"response_format schema at {where}: minItems {schema['minItems']} is more than the {MAX_ARRAY_ITEMS} "
            "items an array without maxItems stops at",
            "give maxItems too",
        )


def _check_required(schema: dict[str, Any], where: str) -> None:
    """With additionalProperties false, a required key must be one of `properties`, or no object satisfies it."""
    if schema.get("additionalProperties") is not False:
        return
    missing = [key for key in schema.get("required", []) if key not in schema.get("properties", {})]
    if missing:
        raise SchemaError(
            f"response_format schema at {where}: required names {', '.join(map(repr, missing))}, which properties "
            "does not define and additionalProperties: false forbids",
            "add it to properties or remove it from required",
        )


def _check_pattern(schema: dict[str, Any], where: str) -> str:
    """The pattern the mask enforces: the mask always matches the whole string, so a leading ^ and a trailing
    (unescaped) $ are dropped; the rest must compile in the mask's regular-expression engine (interegular): no
    look-behinds, backreferences."""
    import interegular

    if "minLength" in schema or "maxLength" in schema:
        raise SchemaError(f"response_format schema at {where}: pattern together with minLength/maxLength")
    pattern = schema["pattern"].removeprefix("^")
    body = pattern[:-1]
    if pattern.endswith("$") and (len(body) - len(body.rstrip("\\"))) % 2 == 0:  # "\\$" ends in a literal $
        pattern = body
    try:
        interegular.parse_pattern(pattern).to_fsm()
    except Exception as err:  # interegular's parse and unsupported-feature errors share no base class
        raise SchemaError(
            f"response_format schema at {where}: pattern cannot be enforced ({err})",
            "anchors are only allowed at the very start (^) and end ($): the whole string must match anyway",
        ) from None
    return pattern


def _check_ref(ref: Any, where: str, root: dict[str, Any]) -> None:
    """A $ref the mask resolves: one of the schema's own #/$defs/NAME or #/definitions/NAME."""
    parts = ref.split("/") if isinstance(ref, str) else []
    if len(parts) != 3 or parts[0] != "#" or parts[1] not in ("$defs", "definitions"):
        raise SchemaError(f"response_format schema at {where}: $ref {ref!r} must be #/$defs/NAME")
    if not isinstance(root.get(parts[1]), dict) or parts[2] not in root[parts[1]]:
        raise SchemaError(f"response_format schema at {where}: $ref {ref!r} names no definition of the schema")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bounded_integer(schema: dict[str, Any], where: str) -> dict[str, Any]:
    """Integer bounds as an enum of the allowed values (the mask cannot compare numbers); a nullable integer
    (["integer", "null"]) as that enum or null."""
    nullable = schema.get("type") in (["integer", "null"], ["null", "integer"])
    if schema.get("type") != "integer" and not nullable:
        raise SchemaError(
            f"response_format schema at {where}: minimum/maximum are enforced on integers only",
            'use "type": "integer" or ["integer", "null"] with both bounds, or drop the bounds',
        )
    for key in _BOUNDS:
        if key in schema and not (_is_number(schema[key]) and math.isfinite(schema[key])):
            raise SchemaError(f"response_format schema at {where}: {key} must be a finite number, not {schema[key]}")
    low = max(_bound(schema, "minimum", math.ceil, 0), _bound(schema, "exclusiveMinimum", math.floor, 1))
    high = min(_bound(schema, "maximum", math.floor, 0), _bound(schema, "exclusiveMaximum", math.ceil, -1))
    if math.isinf(low) or math.isinf(high) or high - low + 1 > MAX_INTEGER_CHOICES:
        raise SchemaError(
            f"response_format schema at {where}: integer bounds must give both ends and at most "
            f"{MAX_INTEGER_CHOICES} values"
        )
    if high < low:
        raise SchemaError(f"response_format schema at {where}: no integer lies within the bounds")
    values = [v for v in range(low, high + 1) if "enum" not in schema or v in schema["enum"]]
    if not values:
        raise SchemaError(f"response_format schema at {where}: no value of enum lies within the bounds")
    rest = {k: v for k, v in schema.items() if k not in _BOUNDS and k != "type"}
    if nullable and None in schema.get("enum", [None]):
        return {**{k: v for k, v in rest.items() if k != "enum"}, "anyOf": [{"enum": values}, {"type": "null"}]}
    return {**rest, "enum": values}


def _bound(schema: dict[str, Any], key: str, rounding: Any, step: int) -> float:
    """The integer bound `key` gives (rounded inwards, `step` past an exclusive one); infinite when absent."""
    if key not in schema:
        return math.inf * (1 if step < 0 or key == "maximum" else -1)
    return rounding(schema[key]) + step


def violation(schema: dict[str, Any], text: str) -> str | None:
    """Why `text` is not JSON valid against `schema` (None when it is)."""
    from jsonschema import Draft202012Validator

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return f"not JSON: {err}"
    error = next(iter(Draft202012Validator(schema).iter_errors(value)), None)
    return None if error is None else f"{'/'.join(map(str, error.path)) or '(root)'}: {error.message}"


class AnswerError(UserError):
    """A constrained answer that is not JSON valid against its schema: cut by the token limit, or left invalid
    where the mask could not go on."""


def check_answer(schema: dict[str, Any], text: str, finish_reason: str | None) -> None:
    """AnswerError when the finished `text` is not JSON valid against `schema`, saying why."""
    problem = violation(schema, text)
    if problem is None:
        return
    if finish_reason == "length":
        raise AnswerError(
            "the answer hit the token limit before its JSON closed (it will not parse)",
            "raise --max-new-tokens (max_new_tokens), or bound strings with maxLength and arrays with maxItems",
        )
    raise AnswerError(
        f"the answer does not validate against the schema ({problem}): the mask could not continue it",
        "check that the schema can be satisfied, or simplify it",
    )


class _QuietEnforcer(logging.Filter):
    """Drops the traceback lm-format-enforcer logs (to the root logger) when its parser cannot go on; it then
    allows only end-of-sequence, and `check_answer` says what went wrong instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unknown LMFormatEnforcer Problem")


_QUIET = _QuietEnforcer()


class Vocabulary:
    """What lm-format-enforcer needs to know about a tokenizer, built once (a few seconds for 49k tokens)."""

    def __init__(self, codec: Codec, vocab_size: int, eos_ids: set[int]) -> None:
        self.codec, self.vocab_size, self.eos_ids = codec, vocab_size, eos_ids
        self._data: Any = None
        self._lock = threading.Lock()

    def data(self) -> Any:
        with self._lock:
            if self._data is None:
                self._data = self._build()
            return self._data

    def _build(self) -> Any:
        from lmformatenforcer import TokenEnforcerTokenizerData

        zero = self.codec.encode("0")[-1]
        tokens = []
        for token in range(self.vocab_size):
            alone = self.codec.decode([token])
            if token in self.eos_ids or not alone:  # special tokens decode to nothing
                continue
            # after "0" a word-start token keeps its leading space, which decoding alone may drop
            after_zero = self.codec.decode([zero, token])[1:]
            tokens.append((token, after_zero, len(after_zero) > len(alone)))
        eos = sorted(self.eos_ids)

        def decode(ids: list[int]) -> str:
            return self.codec.decode(ids).rstrip("\ufffd")

        return TokenEnforcerTokenizerData(tokens, decode, eos, False, self.vocab_size)


class JsonConstraint:
    """The tokens allowed next for one request, given what it has generated so far. Once the text so far is a
    complete valid object or array only end-of-sequence is allowed (the parser would allow trailing whitespace, which a
    small model happily produces until the whitespace limit)."""

    def __init__(self, vocabulary: Vocabulary, schema: dict[str, Any]) -> None:
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer

        logging.getLogger().addFilter(_QUIET)  # once: a filter already there is not added again
        self.schema = schema
        self._vocabulary = vocabulary
        self._enforcer = TokenEnforcer(vocabulary.data(), JsonSchemaParser(schema))
        try:  # the first step builds the parser of the root value: what it cannot parse fails here, not mid-answer
            self._enforcer.get_allowed_tokens([])
        except Exception as err:  # lm-format-enforcer raises bare Exception and ValueError for unsupported schemas
            raise SchemaError(f"response_format schema cannot be enforced: {err}") from None

    def allowed(self, generated: Sequence[int]) -> list[int]:
        tokens = self._enforcer.get_allowed_tokens(list(generated)).allowed_tokens
        eos = self._vocabulary.eos_ids
        if generated and any(t in eos for t in tokens):
            text = self._vocabulary.codec.decode(generated).rstrip()
            if text.endswith(("}", "]")) and violation(self.schema, text) is None:  # a number could go on
                return sorted(eos)
        return tokens
