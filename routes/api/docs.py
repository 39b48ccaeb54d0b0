"""The API's browsable documentation: a page rendered on the server from the app's own
OpenAPI schema. (Swagger UI and friends load scripts from CDNs, which the app's
Content-Security-Policy forbids; this page needs no script at all.)"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from services.ratelimit import API_LIMITER

METHODS = ("get", "post", "put", "patch", "delete")
# The page is Norwegian; the schema (read by developers' tools) stays English.
SUMMARIES = {
    "List clients": "Klientene",
    "One client": "Én klient",
    "Chart of accounts": "Kontoplanen",
    "Balances": "Saldobalansen",
    "Changes since a cursor": "Endringer siden en markør",
    "Import a SAF-T Financial file": "Importer en SAF-T-fil",
    "One SAF-T import": "Én SAF-T-import",
    "Audit log": "Revisjonsloggen",
}


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
                    "summary": SUMMARIES.get(op.get("summary", ""), op.get("summary", "")),
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
