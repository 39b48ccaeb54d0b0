"""The receiver of the systems' change callbacks: `/webhooks/{system}/{hook id}` (the
Tripletex subscriptions made before there were several systems already use this form).

No login, session or CSRF: the system proves itself with the subscription's signature. The
answer comes as soon as the change is noted; the sync itself runs in the scheduler.
"""

import logging

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Response

from routes.health import NO_SESSION_OR_CSRF
from services.change_events.callbacks import Outcome
from services.change_events.subscriptions import RECEIVER_PREFIX
from web.dependencies import Services
from web.guards import PUBLIC

STATUS = {
    Outcome.ACCEPTED: 200,
    Outcome.DUPLICATE: 200,  # taken in before: saying so stops the retries
    Outcome.UNKNOWN: 404,
    Outcome.REJECTED: 401,
}


class QuietAnsweredCallbacks(logging.Filter):
    """Drops uvicorn's access line for callbacks answered 2xx: a system may send hundreds a
    second, each is counted in `erp_webhook_events`, and writing a line each cost a fifth of
    the receiver's CPU (bench/README.md). Refused ones (401, 404) are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args  # uvicorn: (client, method, path, http version, status)
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[4], int):
            return not (str(args[2]).startswith(RECEIVER_PREFIX) and args[4] < 300)
        return True


QUIET_ANSWERED_CALLBACKS = QuietAnsweredCallbacks()


# A plain Request, not the app's HTMXRequest: that one and its htmx details refer to each
# other, so every request left a cycle of some forty objects for the garbage collector,
# whose pauses then held up the callbacks in flight (bench/README.md).
@post(
    RECEIVER_PREFIX + "{system:str}/{hook_id:str}",
    opt={**NO_SESSION_OR_CSRF, **PUBLIC},
    status_code=200,
    request_class=Request,
)
async def change_callback(
    request: Request,
    services: NamedDependency[Services],
    system: FromPath[str],
    hook_id: FromPath[str],
) -> Response[None]:
    headers = {name.lower(): value for name, value in request.headers.items()}
    received = await services.callback_inbox.receive(system, hook_id, headers, await request.body())
    services.metrics.webhook_events.labels(
        # Named only when a hook of that system answered: the path is anyone's to choose,
        # and every label value is a time series.
        system="unknown" if received.outcome is Outcome.UNKNOWN else system,
        event=received.event or "unknown",
        outcome=received.outcome.value,
    ).inc()
    if received.outcome is Outcome.ACCEPTED and services.sync_runner is not None:
        services.sync_runner.wake()
    return Response(None, status_code=STATUS[received.outcome])
