"""Validate PowerOffice Go v2 responses against PowerOffice's OpenAPI 3.0 spec.

    validator = spec_validator()           # shared; the spec is parsed once per process
    problems = validator.validate("GET", "/TrialBalance", 200, body)

Stricter than the spec on purpose: objects may not carry properties their schema does not
declare (ProblemDetails excepted: it is open), `null` only where a schema says `nullable`,
and the formats date, date-time (RFC 3339, with an offset), uuid and int32/int64 are checked.
Error statuses the spec lists without a body (401, 403, 429, 5xx) are held to ProblemDetails,
which the spec's `default` response promises.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

# A copy of ../shared/poweroffice/openapi-v2.yaml, so the tests run wherever the repo does.
SPEC_PATH = Path(__file__).resolve().parent / "data" / "poweroffice-openapi-v2.yaml"
_BASE_URI = "urn:poweroffice:openapi"
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@_FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or (len(value) == 10 and bool(date.fromisoformat(value)))


@_FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


@_FORMATS.checks("int32")
def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _is_int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def _tighten(node: Any) -> None:
    """Close object schemas and turn OpenAPI's `nullable` into JSON Schema's null type."""
    if isinstance(node, dict):
        for value in node.values():
            _tighten(value)
        is_object = "properties" in node and node.get("type", "object") == "object"
        if is_object and "additionalProperties" not in node:
            node["additionalProperties"] = False
        if node.pop("nullable", False) and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
    elif isinstance(node, list):
        for value in node:
            _tighten(value)


def _json_safe(node: Any) -> Any:
    """YAML reads `example: 2021-09-30` as a date; the schema resource must be plain JSON."""
    if isinstance(node, dict):
        return {str(k): _json_safe(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_json_safe(v) for v in node]
    if isinstance(node, date | datetime):
        return node.isoformat()
    return node


@cache
def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        spec = _json_safe(yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    _tighten(spec["components"]["schemas"])
    _tighten(spec["paths"])
    return spec


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


class SpecValidator:
    def __init__(self, path: Path = SPEC_PATH) -> None:
        self.spec = _load(path)
        resource = Resource.from_contents(self.spec, default_specification=DRAFT7)
        self._registry: Registry[Any] = Registry().with_resource(_BASE_URI, resource)
        self._validators: dict[str, Draft7Validator] = {}

    def schema_pointer(self, method: str, path: str, status: int) -> str | None:
        """JSON pointer to the schema documenting that response; None when it has no body."""
        operation = self.spec["paths"].get(path, {}).get(method.lower())
        if operation is None:
            raise KeyError(f"{method} {path} is not in the spec")
        responses = operation.get("responses", {})
        response = responses.get(str(status)) or responses.get("default") or {}
        if "application/json" in response.get("content", {}):
            return _pointer("paths", path, method.lower(), "responses",
                            str(status) if str(status) in responses else "default",
                            "content", "application/json", "schema")  # fmt: skip
        if status >= 400:
            return _pointer("components", "schemas", "ProblemDetails")
        return None

    def validator(self, pointer: str) -> Draft7Validator:
        found = self._validators.get(pointer)
        if found is None:
            schema = {"$ref": f"{_BASE_URI}#/{pointer}"}
            found = Draft7Validator(schema, registry=self._registry, format_checker=_FORMATS)
            self._validators[pointer] = found
        return found

    def validate(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Problems with this response (empty when it conforms). `body` may be raw bytes."""
        where = f"{method.upper()} {path} -> {status}"
        try:
            pointer = self.schema_pointer(method, path, status)
        except KeyError as exc:
            return [f"{where}: {exc}"]
        responses = self.spec["paths"][path][method.lower()]["responses"]
        if str(status) not in responses and status < 400:
            return [f"{where}: the spec documents no such status"]
        if pointer is None:
            return [] if not body else [f"{where}: expected no body"]
        if isinstance(body, bytes | str):
            try:
                body = json.loads(body)
            except ValueError as exc:
                return [f"{where}: body is not JSON ({exc})"]
        return [
            f"{where}: {'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in self.validator(pointer).iter_errors(body)
        ]


@cache
def spec_validator() -> SpecValidator:
    return SpecValidator()
