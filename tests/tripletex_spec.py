"""Validate Tripletex API responses against Tripletex's own OpenAPI 3 spec.

    validator = spec_validator()           # shared; the spec is parsed once per process
    problems = validator.validate("GET", "/ledger/account", 200, body)

Stricter than the spec on two points, both on purpose: objects may not carry properties the
schema does not declare (a typo'd or invented field is a fidelity bug), and `null` is only
accepted where a schema says `nullable` (this spec never does).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SPEC_PATH = Path(__file__).parent / "data" / "tripletex-openapi.json"
_BASE_URI = "urn:tripletex:openapi"
_SCHEMA_PREFIX = "#/components/schemas/"


def _tighten(node: Any) -> None:
    """Close object schemas (no undeclared properties) and honour OpenAPI's `nullable`."""
    if isinstance(node, dict):
        for value in node.values():
            _tighten(value)
        is_object = "properties" in node and node.get("type", "object") == "object"
        if is_object and "additionalProperties" not in node and "discriminator" not in node:
            node["additionalProperties"] = False
        if node.pop("nullable", False) and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
    elif isinstance(node, list):
        for value in node:
            _tighten(value)


@cache
def _load(path: Path, strict: bool) -> dict[str, Any]:
    spec = json.loads(path.read_text(encoding="utf-8"))
    if strict:
        _tighten(spec["components"]["schemas"])
    return spec


class SpecValidator:
    def __init__(self, path: Path = SPEC_PATH, *, strict: bool = True) -> None:
        self.spec = _load(path, strict)
        resource = Resource.from_contents(self.spec, default_specification=DRAFT7)
        self._registry: Registry[Any] = Registry().with_resource(_BASE_URI, resource)
        self._validators: dict[str, Draft7Validator] = {}

    def schema_name(self, method: str, path_template: str, status: int) -> str | None:
        """The component schema documenting that response, or None if there is none."""
        operation = self.spec["paths"].get(path_template, {}).get(method.lower())
        if operation is None:
            return None
        responses = operation.get("responses", {})
        response = responses.get(str(status))
        if response is None:
            if status >= 400:
                # The spec only documents success bodies; every error body is an ApiError.
                return "ApiError"
            response = responses.get("default")
        if response is None:
            return None
        content = response.get("content", {})
        media = content.get("application/json") or next(iter(content.values()), {})
        ref = media.get("schema", {}).get("$ref", "")
        return ref.removeprefix(_SCHEMA_PREFIX) if ref.startswith(_SCHEMA_PREFIX) else None

    def validator(self, schema_name: str) -> Draft7Validator:
        found = self._validators.get(schema_name)
        if found is None:
            schema = {"$ref": f"{_BASE_URI}{_SCHEMA_PREFIX}{schema_name}"}
            found = Draft7Validator(schema, registry=self._registry)
            self._validators[schema_name] = found
        return found

    def validate(self, method: str, path_template: str, status: int, body: Any) -> list[str]:
        """Problems with this response (empty when it conforms). `body` may be raw bytes."""
        where = f"{method.upper()} {path_template} -> {status}"
        if status == 204 or (status == 304 and not body):
            return [] if not body else [f"{where}: expected no body"]
        if isinstance(body, bytes | str):
            try:
                body = json.loads(body)
            except ValueError as exc:
                return [f"{where}: body is not JSON ({exc})"]
        if path_template not in self.spec["paths"] and status < 400:
            return [f"{where}: no such operation in the spec"]
        name = self.schema_name(method, path_template, status) or (
            "ApiError" if status >= 400 else None
        )
        if name is None:
            return [f"{where}: the spec documents no JSON body for this response"]
        return [
            f"{where}: {'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in self.validator(name).iter_errors(body)
        ]


@cache
def spec_validator() -> SpecValidator:
    """One validator per process, so its compiled per-schema validators are reused too."""
    return SpecValidator()
