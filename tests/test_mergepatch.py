"""JSON Merge Patch (RFC 7396): apply, diff and compose."""

from __future__ import annotations

import copy
import json
from functools import reduce
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northstard.core.mergepatch import apply_patch, compose, diff

# -- RFC 7396 ------------------------------------------------------------

RFC_APPENDIX_A = [
    ('{"a":"b"}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'),
    ('{"a":"b"}', '{"a":null}', "{}"),
    ('{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'),
    ('{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'),
    ('{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'),
    ('{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'),
    ('["a","b"]', '["c","d"]', '["c","d"]'),
    ('{"a":"b"}', '["c"]', '["c"]'),
    ('{"a":"foo"}', "null", "null"),
    ('{"a":"foo"}', '"bar"', '"bar"'),
    ('{"e":null}', '{"a":1}', '{"e":null,"a":1}'),
    ("[1,2]", '{"a":"b","c":null}', '{"a":"b"}'),
    ("{}", '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'),
]

RFC_SECTION_3 = (
    """{"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"], "content": "This will be unchanged"}""",
    """{"title": "Hello!", "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": null}, "tags": ["example"]}""",
    """{"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
        "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"}""",
)


@pytest.mark.parametrize(("original", "patch", "result"), [*RFC_APPENDIX_A, RFC_SECTION_3])
def test_rfc7396_examples(original: str, patch: str, result: str) -> None:
    target, merge = json.loads(original), json.loads(patch)
    target_before, merge_before = copy.deepcopy(target), copy.deepcopy(merge)
    assert apply_patch(target, merge) == json.loads(result)
    assert target == target_before
    assert merge == merge_before


def test_apply_patch_returns_a_new_object() -> None:
    target = {"a": {"b": 1}}
    out = apply_patch(target, {"a": {"c": 2}})
    assert out == {"a": {"b": 1, "c": 2}}
    assert out is not target
    assert out["a"] is not target["a"]
    assert target == {"a": {"b": 1}}


def test_diff_examples() -> None:
    assert diff({"a": "1", "b": {"c": "2"}}, {"a": "1", "b": {"c": "3"}}) == {"b": {"c": "3"}}
    assert diff({"a": "1", "b": "2"}, {"a": "1"}) == {"b": None}
    assert diff({"a": {"x": "1"}}, {"a": {"x": "1", "y": "2"}}) == {"a": {"y": "2"}}
    assert diff({}, {"a": {"b": "1"}}) == {"a": {"b": "1"}}
    assert diff({"a": "1"}, {"a": {"b": "1"}}) == {"a": {"b": "1"}}
    assert diff({"a": {"b": "1"}}, {"a": "1"}) == {"a": "1"}
    assert diff({"a": [1, 2]}, {"a": [1, 2, 3]}) == {"a": [1, 2, 3]}
    # same value, other JSON type: still a change
    assert diff({"a": 1}, {"a": True}) == {"a": True}
    assert diff({"a": False}, {"a": 0}) == {"a": 0}
    assert diff({"a": {}}, {"a": {}}) == {}


def test_diff_sees_a_json_type_change_inside_a_list() -> None:
    old, new = {"a": [0, 1]}, {"a": [False, True]}
    patched = apply_patch(old, diff(old, new))
    assert json.dumps(patched) == json.dumps(new)


def test_compose_examples() -> None:
    assert compose({"a": "1"}, {"a": None}) == {"a": None}
    assert compose({"a": None}, {"a": "2"}) == {"a": "2"}
    assert compose({"a": {"b": "1"}}, {"a": {"c": "2"}}) == {"a": {"b": "1", "c": "2"}}
    assert compose({"a": {"b": "1"}}, {"a": {"b": None}}) == {"a": {"b": None}}
    assert compose({"a": "1"}, {"b": "2"}) == {"a": "1", "b": "2"}
    assert compose({}, {"a": {"b": "1"}}) == {"a": {"b": "1"}}


@pytest.mark.parametrize(
    ("target", "first", "second"),
    [
        ({}, {"a": None}, {"a": {"b": None, "c": "1"}}),
        ({"a": "s"}, {"a": "x"}, {"a": {"b": "1"}}),
        ({"a": "s"}, {"a": {"b": "1"}}, {"a": {"c": "2"}}),
        ({"a": {"b": "0", "c": "0", "d": "0"}}, {"a": {"b": None}}, {"a": {"b": "2", "c": None}}),
        ({"a": {"b": "0"}, "z": "1"}, {"z": None, "a": {"b": "1"}}, {"z": "2", "a": {"b": "1"}}),
    ],
)
def test_compose_matches_sequential_application(
    target: dict[str, Any], first: dict[str, Any], second: dict[str, Any]
) -> None:
    before = copy.deepcopy((target, first, second))
    sequential = apply_patch(apply_patch(target, first), second)
    assert apply_patch(target, compose(first, second)) == sequential
    assert (target, first, second) == before


# -- properties over arbitrary JSON (no nulls) -----------------------------

KEYS = st.text(alphabet="abcde", min_size=1, max_size=2)
SCALARS = st.text(max_size=4) | st.integers(-1000, 1000)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
DOCS = st.dictionaries(KEYS, JSON, max_size=5)


def no_nulls(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v is not None and no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(v is not None and no_nulls(v) for v in value)
    return value is not None


@settings(deadline=None, max_examples=120)
@given(DOCS, DOCS)
def test_apply_of_diff_yields_the_target(a: dict[str, Any], b: dict[str, Any]) -> None:
    a_before, b_before = copy.deepcopy(a), copy.deepcopy(b)
    patch = diff(a, b)
    assert apply_patch(a, patch) == b
    assert json.dumps(apply_patch(a, patch), sort_keys=True) == json.dumps(b, sort_keys=True)
    assert (a, b) == (a_before, b_before)


@settings(deadline=None, max_examples=60)
@given(DOCS, DOCS)
def test_patch_is_idempotent(a: dict[str, Any], b: dict[str, Any]) -> None:
    patch = diff(a, b)
    assert apply_patch(b, patch) == b


@settings(deadline=None, max_examples=40)
@given(DOCS)
def test_diff_of_equal_documents_is_empty(a: dict[str, Any]) -> None:
    assert diff(a, a) == {}
    assert diff(a, copy.deepcopy(a)) == {}


@settings(deadline=None, max_examples=60)
@given(DOCS, DOCS)
def test_diff_is_minimal(a: dict[str, Any], b: dict[str, Any]) -> None:
    """A patch only names keys that differ, and never holds a null inside a new value."""
    patch = diff(a, b)
    for key, value in patch.items():
        assert key not in a or key not in b or a[key] != b[key]
        if value is None:
            assert key in a and key not in b
        elif not (isinstance(value, dict) and isinstance(a.get(key), dict)):
            assert no_nulls(value)


# -- type-stable documents: the snapshot document's rules -------------------


@st.composite
def stable_docs(draw: st.DrawFn, min_docs: int = 2, max_docs: int = 6) -> list[dict[str, Any]]:
    """Documents of one schema: every path keeps its type, object keys only grow.

    Skeleton: scalar leaves that come and go, nested objects that always exist,
    a str->str map whose keys only grow, a map of objects whose keys only grow,
    and a map of scalars whose keys come and go freely.
    """
    count = draw(st.integers(min_docs, max_docs))
    text = st.text(alphabet="xyz01", max_size=3)
    ints = st.integers(-5, 5)

    def opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.none() | strategy

    grow_keys = draw(st.lists(st.text(alphabet="klmn", min_size=1, max_size=2), unique=True,
                              max_size=5))
    group_keys = draw(st.lists(st.sampled_from(["atlas", "hermes", "iris", "zeus"]), unique=True))
    grow_sizes = sorted(draw(st.lists(st.integers(0, len(grow_keys)), min_size=count,
                                      max_size=count)))
    group_sizes = sorted(draw(st.lists(st.integers(0, len(group_keys)), min_size=count,
                                       max_size=count)))
    docs = []
    for index in range(count):
        doc: dict[str, Any] = {
            "meta": {"inner": {}},
            "map": {k: draw(text) for k in grow_keys[: grow_sizes[index]]},
            "groups": {
                k: {"v": draw(ints), **({"w": w} if (w := draw(opt(text))) is not None else {})}
                for k in group_keys[: group_sizes[index]]
            },
            "flags": draw(st.dictionaries(st.sampled_from("pqrs"), text, max_size=4)),
        }
        for key, strategy in (("title", text), ("count", ints), ("tags", st.lists(ints, max_size=3))):
            value = draw(opt(strategy))
            if value is not None:
                doc[key] = value
        for key, strategy in (("x", text), ("y", ints)):
            value = draw(opt(strategy))
            if value is not None:
                doc["meta"][key] = value
        z = draw(opt(text))
        if z is not None:
            doc["meta"]["inner"]["z"] = z
        docs.append(doc)
    return docs


@settings(deadline=None, max_examples=80)
@given(stable_docs(min_docs=3, max_docs=3))
def test_composed_diffs_of_three_stable_documents(docs: list[dict[str, Any]]) -> None:
    d1, d2, d3 = docs
    before = copy.deepcopy(docs)
    p1, p2 = diff(d1, d2), diff(d2, d3)
    patches_before = copy.deepcopy((p1, p2))
    assert apply_patch(d1, compose(p1, p2)) == d3
    assert apply_patch(apply_patch(d1, p1), p2) == d3
    assert docs == before
    assert (p1, p2) == patches_before


@settings(deadline=None, max_examples=50)
@given(stable_docs(min_docs=2, max_docs=7))
def test_compose_of_many_patches_equals_applying_them_in_order(docs: list[dict[str, Any]]) -> None:
    patches = [diff(a, b) for a, b in pairwise(docs)]
    in_order = reduce(apply_patch, patches, docs[0])
    assert in_order == docs[-1]
    assert apply_patch(docs[0], reduce(compose, patches)) == in_order
    # grouping does not matter (compose is associative on these patches)
    if len(patches) >= 3:
        left = compose(compose(patches[0], patches[1]), patches[2])
        right = compose(patches[0], compose(patches[1], patches[2]))
        assert apply_patch(docs[0], left) == apply_patch(docs[0], right) == docs[3]


@settings(deadline=None, max_examples=40)
@given(stable_docs(min_docs=2, max_docs=6))
def test_merged_patch_lands_a_client_that_has_part_of_the_range(docs: list[dict[str, Any]]) -> None:
    """The hub's promise: a merged delta over i..k also fits a client already at j (i <= j <= k)."""
    patches = [diff(a, b) for a, b in pairwise(docs)]
    for i in range(len(docs)):
        merged: dict[str, Any] = {}
        for k in range(i + 1, len(docs)):
            merged = compose(merged, patches[k - 1])
            for j in range(i, k + 1):
                assert apply_patch(docs[j], merged) == docs[k], (i, j, k)
