"""Outbound notifications: an office's webhook, signed as Standard Webhooks specifies.

Changes are recorded in `data_change` with the data (services/publishing.py). A worker in
each process turns new changes into deliveries (one event per client and kind, per batch)
and POSTs them: headers `webhook-id` (the same on every retry), `webhook-timestamp` (Unix
seconds of the attempt) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of
`{id}.{timestamp}.{body}` under the endpoint's `whsec_` secret). A delivery that does not
get a 2xx is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (about a day in all),
then marked failed. Every attempt is kept for the leveranselogg.

Several processes may run the worker on one database: advancing an endpoint's change cursor
and claiming a due delivery are both compare-and-set updates, so each change becomes one
delivery and each attempt is made by one process.

- `signing`: the secret and the three headers.
- `endpoints`: the office's webhook URL and its secret (Innstillinger → Varsler).
- `delivery`: events queued, the retry schedule and the worker.
- `history`: the leveranselogg the settings page shows.
- `email_alerts`, `mailer`: e-mails to the office's chosen address when a client has failed
  for a day or a key is refused (at most one a day per problem), through SMTP_*.
"""

from services.notifications.delivery import (
    EVENT_TYPES,
    MAX_ATTEMPTS,
    RETRY_SCHEDULE,
    TEST_EVENT,
    NotificationWorker,
    queue_test_event,
    retry_now,
    running_notifications,
)
from services.notifications.email_alerts import (
    EmailAlerts,
    check_address,
    get_setting,
    save_setting,
    send_test,
)
from services.notifications.endpoints import (
    NotificationInputError,
    check_url,
    delete_endpoint,
    get_endpoint,
    reveal_secret,
    rotate_secret,
    save_endpoint,
)
from services.notifications.history import LogEntry, delivery_log, last_attempt
from services.notifications.mailer import Mailer, MailError
from services.notifications.signing import new_secret, sign, signed_headers

__all__ = [
    "EVENT_TYPES",
    "MAX_ATTEMPTS",
    "RETRY_SCHEDULE",
    "TEST_EVENT",
    "EmailAlerts",
    "LogEntry",
    "MailError",
    "Mailer",
    "NotificationInputError",
    "NotificationWorker",
    "check_address",
    "check_url",
    "delete_endpoint",
    "delivery_log",
    "get_endpoint",
    "get_setting",
    "last_attempt",
    "new_secret",
    "queue_test_event",
    "retry_now",
    "reveal_secret",
    "rotate_secret",
    "running_notifications",
    "save_endpoint",
    "save_setting",
    "send_test",
    "sign",
    "signed_headers",
]
