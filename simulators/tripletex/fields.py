"""Tripletex's `fields` filter: `a,b`, `a(b,c)`, `*`, `a(*)`, nested to any depth.

Objects are rendered as plain dicts holding every field of their model (None for "no value"),
with nested linked objects as `Resource`. Without sub-fields a linked object shows as
`{id, url}`, as Tripletex does; `changes` appears only when asked for by name. A value that
costs more to make (a linked object, a list of them) may be a `Later`, made only when shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

FieldTree = dict[str, "FieldTree | None"]
ALL: FieldTree = {"*": None}


class Resource(dict[str, Any]):
    """A linked object (it has its own id and url), named by its model for error messages."""

    def __init__(self, model: str, fields: Mapping[str, Any]) -> None:
        super().__init__(fields)
        self.model = model


class Later:
    """A field's value made only if the fields filter shows it: a balance sheet asking for
    `account(number)` would otherwise render every account's VAT types and currency."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class FieldsError(ValueError):
    pass


def parse_fields(text: str | None) -> FieldTree:
    """Parse a fields pattern into a tree; empty means every field (`*`)."""
    text = (text or "").strip()
    if not text:
        return ALL
    tree, end = _parse_list(text, 0)
    if end != len(text):
        raise FieldsError(f"Unbalanced parentheses in fields filter: {text}")
    return tree


def _parse_list(text: str, pos: int) -> tuple[FieldTree, int]:
    tree: FieldTree = {}
    name = ""
    while pos < len(text):
        char = text[pos]
        if char == "(":
            if not name.strip():
                raise FieldsError(f"Missing field name before '(' in fields filter: {text}")
            sub, pos = _parse_list(text, pos + 1)
            if pos >= len(text) or text[pos] != ")":
                raise FieldsError(f"Unbalanced parentheses in fields filter: {text}")
            _merge(tree, name.strip(), sub)
            name = ""
        elif char == ")":
            break
        elif char == ",":
            if name.strip():
                _merge(tree, name.strip(), None)
            name = ""
        else:
            name += char
        pos += 1
    if name.strip():
        _merge(tree, name.strip(), None)
    return tree, pos


def _merge(tree: FieldTree, name: str, sub: FieldTree | None) -> None:
    existing = tree.get(name)
    if existing is not None and sub is not None:
        tree[name] = {**existing, **sub}
    elif name not in tree or sub is not None:
        tree[name] = sub


def apply_fields(obj: Mapping[str, Any], tree: FieldTree, model: str = "") -> dict[str, Any]:
    """The object as Tripletex would show it for that fields tree; None values are left out
    (the spec has no nullable fields, so an absent field is the faithful way to say null)."""
    model = getattr(obj, "model", model)
    for name in tree:
        if name != "*" and name not in obj:
            raise FieldsError(
                f"Illegal field in fields filter: {name}. {name} does not match a field "
                f"in the model: {model}DTO"
            )
    out: dict[str, Any] = {}
    wanted = obj.keys() if "*" in tree else [key for key in obj if key in tree]
    for key in wanted:
        if key == "changes" and key not in tree:
            continue
        value = obj[key]
        if isinstance(value, Later):
            value = value.make()
        if value is not None:
            out[key] = _render(value, tree.get(key))
    return out


def _render(value: Any, sub: FieldTree | None) -> Any:
    if isinstance(value, list):
        return [_render(item, sub) for item in value]
    if isinstance(value, dict):  # an object: a DTO's dict, or a Resource
        if sub is None:
            if isinstance(value, Resource):
                return {"id": value["id"], "url": value["url"]}
            return apply_fields(value, ALL)
        return apply_fields(value, sub)
    return value
