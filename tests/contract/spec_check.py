"""The providers' published schemas (vendored in ``specs/``) as a strict JSON Schema check.

``problems(spec, schema, instance)`` lists why ``instance`` is not something
the provider documents: a wrong type, a missing required field, or (strict)
a field the schema does not name. ``response_problems(spec, path, status,
body)`` picks the schema an OpenAPI document gives for that path and status.
An empty list means the real API could send it.
"""

from __future__ import annotations

import copy
import json
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from northstard.core.fieldcheck import Shape

__all__ = ["SPECS", "example", "load", "problems", "render", "response_problems", "shape"]

SPECS = Path(__file__).parent / "specs"


@cache
def load(name: str) -> dict[str, Any]:
    """A vendored document by file name (``kalshi-openapi.json``)."""
    doc: dict[str, Any] = json.loads((SPECS / name).read_text())
    return doc


def _strict(node: Any) -> Any:
    """A copy where every object that names its properties refuses any other."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@cache
def _validator(spec: str, schema: str) -> Draft202012Validator:
    doc = _strict(copy.deepcopy(load(spec)))
    return Draft202012Validator({**doc, "$ref": f"#/components/schemas/{schema}"})


def problems(spec: str, schema: str, instance: Any) -> list[str]:
    """Why ``instance`` does not fit ``components.schemas[schema]`` of ``spec`` ([] if it does)."""
    errors = sorted(_validator(spec, schema).iter_errors(instance), key=lambda e: list(e.path))
    return [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message[:200]}" for e in errors]


def _response_schema(spec: str, path: str, status: int) -> str:
    responses = load(spec)["paths"][path]["get"]["responses"]
    for key in (str(status), f"{status // 100}XX", "default"):
        if key in responses:
            ref: str = responses[key]["content"]["application/json"]["schema"]["$ref"]
            return ref.rsplit("/", 1)[1]
    raise AssertionError(f"{spec}: {path} documents no HTTP {status} response")


def response_problems(spec: str, path: str, status: int, body: bytes) -> list[str]:
    """Why a served response body is not one ``spec`` documents for ``path`` and ``status``."""
    return problems(spec, _response_schema(spec, path, status), json.loads(body))


def example(spec: str, name: str) -> dict[str, Any]:
    """A documented example (a deep copy) from an AsyncAPI message or ``components.examples``."""
    doc = load(spec)
    messages = doc["components"].get("messages", {})
    if name in messages:
        value = messages[name]["examples"][0]["payload"]
    else:
        value = doc["components"]["examples"][name]
    out: dict[str, Any] = copy.deepcopy(value)
    return out


def _node(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with a ``$ref`` (or a nullable ``oneOf`` of one) followed."""
    if "oneOf" in node:
        node = next(n for n in node["oneOf"] if n.get("type") != "null")
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        node = doc["components"]["schemas"][name]
    return node


def shape(spec: str, schema: str, *path: str) -> Shape:
    """The ``Shape`` of ``components.schemas[schema]``, or of the object at ``path`` inside it
    (each step a property; an array steps into its items)."""
    doc = load(spec)
    node = _node(doc, doc["components"]["schemas"][schema])
    for step in path:
        node = _node(doc, node["properties"][step])
        if node.get("type") == "array" or "array" in node.get("type", ()):
            node = _node(doc, node["items"])
    return Shape(frozenset(node["properties"]), frozenset(node.get("required", ())))


def _names(names: frozenset[str]) -> list[str]:
    words = [f'"{name}",' for name in sorted(names)]
    return textwrap.wrap(" ".join(words), 96, initial_indent=" " * 12, subsequent_indent=" " * 12,
                         break_on_hyphens=False)


def render(shapes: dict[str, Shape]) -> str:
    """``shapes`` as the Python literal a plugin's ``spec_fields.py`` holds."""
    lines = ["SHAPES: dict[str, Shape] = {"]
    for label, value in shapes.items():
        lines += [f'    "{label}": Shape(', "        known=frozenset({", *_names(value.known), "        }),",
                  "        required=frozenset({", *_names(value.required), "        }),", "    ),"]
    lines.append("}")
    return "\n".join(lines).replace("frozenset({\n        })", "frozenset()")
