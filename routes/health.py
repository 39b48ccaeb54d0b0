"""Operations endpoints for load balancers, orchestrators and Prometheus.

No login, no session, no CSRF cookie: probes come often and carry no cookies, and loading a
session would put the database in /healthz.
"""

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Response

from services.health import PASSING, run_checks
from services.metrics import Metrics
from web.dependencies import Services

# Route opts read by the session and CSRF middleware (their default exclusion keys).
NO_SESSION_OR_CSRF = {"skip_session": True, "exclude_from_csrf": True}


@get("/healthz", opt=NO_SESSION_OR_CSRF, sync_to_thread=False)
def healthz() -> dict[str, str]:
    """The process is alive; nothing else is checked."""
    return {"status": "ok"}


@get("/readyz", opt=NO_SESSION_OR_CSRF)
async def readyz(services: NamedDependency[Services]) -> Response[dict[str, object]]:
    """Ready for traffic: 200 when every check is ok, 503 naming the failing ones."""
    checks = await run_checks(services)
    ready = all(result in PASSING for result in checks.values())
    return Response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@get("/metrics", opt=NO_SESSION_OR_CSRF, sync_to_thread=False)
def metrics(request: Request, metrics: NamedDependency[Metrics]) -> Response[bytes]:
    """Prometheus exposition; operators keep it off the public internet (see README)."""
    body, content_type = metrics.render(request.headers.get("accept", ""))
    # As a header, not media_type: Litestar would append a second "; charset=utf-8".
    return Response(body, headers={"content-type": content_type})


HEALTH_ROUTES = [healthz, readyz, metrics]
