"""Which response_format schemas the JSON mask can enforce, and the messages for the ones it cannot."""

from __future__ import annotations

import pytest

from modelyard.generation.structured import SchemaError, response_schema, violation


def fmt(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "t", "schema": schema, "strict": True}}


def test_text_is_free_and_json_object_is_any_object():
    assert response_schema(None) is None
    assert response_schema({"type": "text"}) is None
    assert response_schema({"type": "json_object"}) == {"type": "object"}


def test_bounded_integers_become_an_enum_of_the_values_within_the_bounds():
    bounded = {"type": "integer", "minimum": 1, "maximum": 3}
    schema = response_schema(fmt({"type": "object", "properties": {"n": bounded}}))
    assert schema["properties"]["n"] == {"enum": [1, 2, 3]}
    exclusive = response_schema(fmt({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 2.5}))
    assert exclusive == {"enum": [1, 2]}


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}, "uniqueItems"),
        ({"type": "string", "format": "email"}, "format"),
        ({"type": "number", "minimum": 0, "maximum": 1}, "integers only"),
        ({"type": "integer", "minimum": 0}, "both ends"),
        ({"not": {"type": "string"}}, "not"),
        ({"type": "integer", "minimum": 0, "maximum": float("inf")}, "maximum must be a finite number"),
        ({"type": "integer", "minimum": float("nan"), "maximum": 3}, "minimum must be a finite number"),
        ({"enum": []}, "enum leaves no value"),
        ({"type": "integer", "minimum": 0, "maximum": 5, "enum": [7]}, "no value of enum lies within the bounds"),
        ({"$ref": "#/$defs/missing"}, "names no definition"),
        ({"$ref": "https://example.com/s.json"}, r"must be #/\$defs/NAME"),
        ({"enum": [{"a": 1}, [1, 2], "x"]}, "enum values must be all strings or all finite numbers"),
        ({"enum": [True, None]}, "enum values"),
        ({"const": {"a": [1, 2]}}, "const values"),
        ({"type": "string", "pattern": "^(?<=a)b$"}, "pattern cannot be enforced"),
        ({"type": "string", "minLength": 5, "maxLength": 2}, "minLength 5 is more than maxLength 2"),
        ({"type": "array", "minItems": 3, "maxItems": 1}, "minItems 3 is more than maxItems 1"),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 25}, "minItems 25 is more than the 20 items"),
        ({"type": "integer", "enum": ["x", "y"]}, "enum value 'x' is not of type integer"),
        ({"type": "string", "const": 3}, "const value 3 is not of type string"),
        (
            {"type": "object", "properties": {"a": {}}, "required": ["a", "b"], "additionalProperties": False},
            "required names 'b', which properties does not define",
        ),
        ({"type": ["integer", "string"], "minimum": 1, "maximum": 3}, r'or \["integer", "null"\]'),
    ],
)
def test_a_schema_the_mask_cannot_enforce_is_refused_naming_the_keyword_and_place(schema, named):
    with pytest.raises(SchemaError, match=named) as err:
        response_schema(fmt(schema))
    assert "#" in str(err.value)


def test_an_unsatisfiable_schema_is_refused_naming_the_keyword_and_its_path():
    schema = {"type": "object", "properties": {"a": {"type": "string", "minLength": 5, "maxLength": 2}}}
    with pytest.raises(SchemaError, match=r"^response_format schema at #/properties/a: minLength"):
        response_schema(fmt(schema))


def test_an_array_may_ask_for_more_than_20_items_only_with_a_max_items_and_20_keeps_its_cap():
    nested = {"type": "object", "properties": {"ids": {"type": "array", "minItems": 21}}}
    with pytest.raises(SchemaError, match=r"^response_format schema at #/properties/ids: minItems 21"):
        response_schema(fmt(nested))
    assert response_schema(fmt({"type": "array", "minItems": 25, "maxItems": 30}))["maxItems"] == 30
    assert response_schema(fmt({"type": "array", "minItems": 20}))["maxItems"] == 20


def test_a_bounded_nullable_integer_is_the_enum_of_its_values_or_null():
    nullable = {"type": ["integer", "null"], "minimum": 1, "maximum": 3}
    assert response_schema(fmt(nullable)) == {"anyOf": [{"enum": [1, 2, 3]}, {"type": "null"}]}


def test_anchors_at_the_ends_of_a_pattern_are_dropped_as_the_mask_matches_the_whole_string():
    anchored = response_schema(fmt({"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}))
    assert anchored["pattern"] == "[A-Z]{3}-[0-9]{2}"
    assert response_schema(fmt({"type": "string", "pattern": r"^cost \$"}))["pattern"] == r"cost \$"  # a literal $
    assert response_schema(fmt({"type": "string", "pattern": r"a\\$"}))["pattern"] == r"a\\"


def test_a_constant_is_enforced_as_an_enum_of_one_value():
    assert response_schema(fmt({"const": "yes"})) == {"enum": ["yes"]}


def test_an_invalid_schema_or_format_type_is_refused():
    with pytest.raises(SchemaError, match="not a valid JSON schema"):
        response_schema(fmt({"type": 5}))
    with pytest.raises(SchemaError, match="grammar"):
        response_schema({"type": "grammar"})
    with pytest.raises(SchemaError, match=r"json_schema\.schema"):
        response_schema({"type": "json_schema", "json_schema": {"name": "t"}})


def test_violation_says_why_text_is_not_valid_json_for_the_schema():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert violation(schema, '{"n": 3}') is None
    assert violation(schema, '{"n": 3').startswith("not JSON")
    assert "'n' is a required property" in violation(schema, "{}")
