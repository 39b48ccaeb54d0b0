"""The API's browsable documentation: a page rendered on the server from the app's own
OpenAPI schema. (Swagger UI and friends load scripts from CDNs, which the app's
Content-Security-Policy forbids; this page needs no script at all.)"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from services.ratelimit import API_LIMITER

METHODS = ("get", "post", "put", "patch", "delete")


def _type_of(schema: dict[str, Any]) -> str:
    if "oneOf" in schema:
        return " | ".join(_type_of(s) for s in schema["oneOf"])
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    kind = schema.get("type", "")
    if kind == "array":
        return f"list of {_type_of(schema.get('items', {}))}"
    return str(kind or "object")


@get(
    "/api/v1/docs",
    include_in_schema=False,
    opt={"skip_session": True, "exclude_from_csrf": True},
)
async def api_docs(request: Request) -> Template:
    schema = request.app.openapi_schema.to_schema()
    operations = []
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "type": _type_of(p.get("schema", {})),
                            "description": p.get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "responses": [
                        (code, r.get("description", ""))
                        for code, r in sorted(op.get("responses", {}).items())
                    ],
                }
            )
    return Template(
        "pages/settings_api_reference.html",
        context={
            "operations": operations,
            "info": schema.get("info", {}),
            "rate": API_LIMITER.rate,
            "burst": API_LIMITER.burst,
        },
    )
