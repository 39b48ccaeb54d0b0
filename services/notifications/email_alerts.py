"""E-mail alerts: the office's chosen address is told when something needs a person.

Problems (per office):
- an integration whose key the system refused (`Integration.key_status == "invalid"`);
- an active client whose own key was refused (`SyncStatus.KEY_ERROR`, the integration's key
  still good: PowerOffice Go's client keys);
- an active client whose syncs have failed without a success for `FAILING_FOR` (a day),
  counted from its first failed sync after its last successful one (`sync_run`).

Each e-mail lists the office's problems that are due, each with the same Norwegian fix the
pages show and a link when PUBLIC_BASE_URL is set. A problem is e-mailed at most once per
`RESEND_AFTER`: `email_alert` keeps when each was last sent, claimed by a compare-and-set
upsert before sending, so several processes on one database never send it twice. A send that
fails gives the claim back, to be tried again `RETRY_AFTER` later.

Nothing is sent without SMTP settings (SMTP_HOST …), and nothing for an office that has not
switched the alerts on (Innstillinger → Varsler)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, delete, func, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, EmailAlert, EmailAlertSetting, Integration, Office, SyncRun
from models.base import utcnow
from services import audit
from services.audit import Actor
from services.db import SessionFactory, upsert
from services.integrations import display_name
from services.notifications.endpoints import NotificationInputError, changed_fields
from services.notifications.mailer import Mailer, MailError
from services.settings import Settings
from services.sync.status import KEY_INVALID, SyncStatus

log = logging.getLogger(__name__)

FAILING_FOR = timedelta(hours=24)  # a client failing this long is a problem to e-mail
RESEND_AFTER = timedelta(hours=24)  # the same problem is e-mailed at most this often
RETRY_AFTER = timedelta(minutes=10)  # after a failed send
KEEP = timedelta(days=7)  # records of problems no longer e-mailed are forgotten after this
INTERVAL = 60.0  # seconds between looks for problems
LISTED = 50  # problems spelled out in one e-mail; the rest are counted
OSLO = ZoneInfo("Europe/Oslo")
KEY_FIX = KEY_INVALID + ". Klientene synkroniseres ikke før nøkkelen er byttet."
# One address, as people write them: a dot-atom local part, a domain with a dot.
LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


# -- the office's setting ----------------------------------------------------------------


def check_address(raw: str) -> str:
    """The address to store, or NotificationInputError (field `address`) saying why not."""
    address = raw.strip()
    if not address:
        raise NotificationInputError("address", "Fyll inn e-postadressen varslene skal til.")
    if any(c in address for c in ",;") or address.count("@") > 1:
        raise NotificationInputError(
            "address", "Skriv inn én e-postadresse. Vil flere ha varslene, bruk en felles adresse."
        )
    invalid = NotificationInputError(
        "address", "Dette er ikke en gyldig e-postadresse. Skriv den slik: regnskap@kontoret.no"
    )
    local, at, domain = address.rpartition("@")
    if not at or len(address) > 254 or len(local) > 64 or not LOCAL.fullmatch(local):
        raise invalid
    try:
        ascii_domain = ascii_host(domain)
    except UnicodeError:
        raise invalid from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(LABEL.fullmatch(label) for label in labels):
        raise invalid
    if not labels[-1].isalpha() and not labels[-1].startswith("xn--"):
        raise invalid
    return f"{local}@{domain.lower()}"


def ascii_host(domain: str) -> str:
    """blåbær.no → xn--blbr-roah.no: what SMTP is given (UnicodeError when impossible)."""
    return domain.lower().encode("idna").decode("ascii")


# How the audit log names the office's e-mail alerts ("notifications.changed").
AUDIT_TARGET = "Varsler: e-post"


async def get_setting(db: AsyncSession, office_id: int) -> EmailAlertSetting | None:
    return (
        await db.exec(
            select(EmailAlertSetting).where(col(EmailAlertSetting.office_id) == office_id)
        )
    ).first()


async def save_setting(
    db: AsyncSession, actor: Actor, raw_address: str, *, enabled: bool
) -> EmailAlertSetting:
    """Create or change the office's alert address; switched off, it may be left empty. A
    change is recorded in the audit log."""
    address = check_address(raw_address) if enabled or raw_address.strip() else ""
    setting = await get_setting(db, actor.office_id)
    before: tuple[str | None, bool | None] = (None, None)
    if setting is None:
        setting = EmailAlertSetting(office_id=actor.office_id, address=address, enabled=enabled)
        db.add(setting)
    else:
        before = (setting.address, setting.enabled)
        setting.address, setting.enabled, setting.updated_at = address, enabled, utcnow()
    changes = changed_fields(address=(before[0], address), enabled=(before[1], enabled))
    if changes:
        audit.record(db, actor, "notifications.changed", AUDIT_TARGET, **changes)
    await db.commit()
    await db.refresh(setting)
    return setting


# -- problems ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    key: str  # in email_alert: which problem of the office
    what: str  # a line naming the client or integration and what is wrong
    fix: str  # the fix, as the pages word it
    path: str  # the page where it is seen and fixed


def local_time(value: datetime) -> str:
    return value.astimezone(OSLO).strftime("%d.%m.%Y kl. %H:%M")


async def find_problems(
    db: AsyncSession,
    office_id: int,
    now: datetime,
    system_name: Callable[[str], str] = str,
) -> list[Problem]:
    """The office's problems that an e-mail should tell about, as of `now`."""
    problems: list[Problem] = []
    refused: set[int] = set()
    for integration in (
        await db.exec(
            select(Integration)
            .where(
                col(Integration.office_id) == office_id, col(Integration.key_status) == "invalid"
            )
            .order_by(col(Integration.id))
        )
    ).all():
        assert integration.id is not None
        refused.add(integration.id)
        name = display_name(integration, system_name(integration.system))
        problems.append(
            Problem(
                key=f"integration:{integration.id}:key",
                what=f"{name}: nøkkelen er avvist av {system_name(integration.system)}.",
                fix=KEY_FIX,
                path=f"/integrasjoner/{integration.id}",
            )
        )
    rows = (
        await db.exec(
            select(Client, Integration)
            .join(Integration, col(Integration.id) == col(Client.integration_id))
            .where(
                col(Integration.office_id) == office_id,
                col(Integration.id).not_in(refused),
                col(Client.active).is_(True),
                (col(Client.sync_status) == SyncStatus.KEY_ERROR) | (col(Client.sync_failures) > 0),
            )
            .order_by(col(Client.sort_key), col(Client.id))
        )
    ).all()
    failing = [client.id for client, _ in rows if client.sync_status != SyncStatus.KEY_ERROR]
    since = await _failing_since(db, [i for i in failing if i is not None])
    for client, integration in rows:
        assert client.id is not None
        name = display_name(integration, system_name(integration.system))
        if client.sync_status == SyncStatus.KEY_ERROR:
            problems.append(
                Problem(
                    key=f"client:{client.id}:key",
                    what=f"{client.name} ({name}): tilkoblingen til klienten er avvist.",
                    fix=client.sync_error or KEY_INVALID,
                    path=f"/integrasjoner/{integration.id}",
                )
            )
            continue
        first_failure = since.get(client.id)
        if first_failure is None or first_failure > now - FAILING_FOR:
            continue
        problems.append(
            Problem(
                key=f"client:{client.id}:failing",
                what=(
                    f"{client.name} ({name}): synkroniseringen har feilet siden "
                    f"{local_time(first_failure)}."
                ),
                fix=client.sync_error or "Synkroniseringen feiler. Vi prøver igjen automatisk.",
                path=f"/integrasjoner/{integration.id}/klienter/{client.id}/oversikt",
            )
        )
    return problems


async def _failing_since(db: AsyncSession, client_ids: list[int]) -> dict[int, datetime]:
    """Each client's first failed sync after its last successful one."""
    if not client_ids:
        return {}
    ok = aliased(SyncRun)
    later_success = (
        select(ok.id)
        .where(
            col(ok.client_id) == col(SyncRun.client_id),
            col(ok.result) == "ok",
            col(ok.started_at) > col(SyncRun.started_at),
        )
        .exists()
    )
    rows = await db.exec(
        select(col(SyncRun.client_id), func.min(col(SyncRun.started_at)))
        .where(
            col(SyncRun.client_id).in_(client_ids),
            col(SyncRun.result) == "failed",
            ~later_success,
        )
        .group_by(col(SyncRun.client_id))
    )
    return {client_id: first for client_id, first in rows.all() if first is not None}


# -- the e-mail --------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """Names typed by people, made safe for a header (no line breaks or control characters)."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def compose(
    *,
    sender: str,
    address: str,
    office_name: str,
    problems: list[Problem],
    base_url: str | None,
    now: datetime,
) -> EmailMessage:
    if len(problems) == 1:
        subject = f"ERP-integrasjon: {_one_line(problems[0].what)}"
    else:
        subject = f"ERP-integrasjon: {len(problems)} problemer må følges opp"
    lines = [
        "Hei,",
        "",
        f"Dette må følges opp i ERP-integrasjon for {_one_line(office_name)}:",
        "",
    ]
    for problem in problems[:LISTED]:
        lines.append(f"- {_one_line(problem.what)}")
        lines.append(f"  Slik løser du det: {_one_line(problem.fix)}")
        if base_url:
            lines.append(f"  {base_url}{problem.path}")
        lines.append("")
    if len(problems) > LISTED:
        rest = len(problems) - LISTED
        lines += [f"… og {rest} til. Se klientlistene i ERP-integrasjon.", ""]
    lines += [
        "Vi sender høyst én e-post om hvert problem per døgn, så lenge det varer.",
        "Du får denne e-posten fordi e-postvarsler er slått på under Innstillinger → Varsler"
        + (f" ({base_url}/innstillinger/varsler)." if base_url else "."),
    ]
    return _message(sender, address, subject, "\n".join(lines) + "\n", now)


def _message(sender: str, address: str, subject: str, body: str, now: datetime) -> EmailMessage:
    local, _, domain = address.rpartition("@")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"{local}@{ascii_host(domain)}"
    message["Subject"] = subject[:200]
    message["Date"] = format_datetime(now)
    sender_domain = parseaddr(sender)[1].rpartition("@")[2]
    message["Message-ID"] = make_msgid("erp-alert", domain=ascii_host(sender_domain))
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message.set_content(body)
    return message


def trial_message(sender: str, address: str, office_name: str, now: datetime) -> EmailMessage:
    body = (
        "Hei,\n\n"
        f"Dette er en test av e-postvarslene fra ERP-integrasjon for {_one_line(office_name)}.\n"
        "Kommer denne fram, kommer også varslene om klienter som ikke blir synkronisert og "
        "nøkler som avvises.\n"
    )
    return _message(sender, address, "ERP-integrasjon: test av e-postvarsler", body, now)


# -- the job -----------------------------------------------------------------------------

ALERTS: Table = EmailAlert.__table__  # type: ignore[attr-defined]


def _claim(insert: Callable[[Table], object]) -> object:
    """Record a problem as e-mailed now, unless it was within RESEND_AFTER (returns its key
    when this call recorded it)."""
    statement = insert(ALERTS)
    return statement.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=["office_id", "problem_key"],
        set_={"sent_at": statement.excluded.sent_at},  # type: ignore[attr-defined]
        where=ALERTS.c.sent_at <= bindparam("cutoff", type_=ALERTS.c.sent_at.type),
    ).returning(ALERTS.c.problem_key)


class EmailAlerts:
    """Looks for problems and e-mails them; `run_once` is one look (the background loop in
    services/notifications/delivery.running_notifications calls it every INTERVAL)."""

    def __init__(
        self,
        session_factory: SessionFactory,
        mailer: Mailer,
        *,
        base_url: str | None = None,
        system_name: Callable[[str], str] = str,
        now: Callable[[], datetime] = utcnow,
        interval: float = INTERVAL,
    ) -> None:
        self._factory = session_factory
        self.mailer = mailer
        self._base_url = base_url
        self._system_name = system_name
        self._now = now
        self.interval = interval

    @classmethod
    def from_settings(
        cls,
        session_factory: SessionFactory,
        settings: Settings,
        system_name: Callable[[str], str] = str,
    ) -> EmailAlerts | None:
        """The job, or None when no SMTP server is configured (nothing is ever sent)."""
        if not settings.smtp.configured:
            return None
        return cls(
            session_factory,
            Mailer(settings.smtp),
            base_url=settings.public_base_url,
            system_name=system_name,
        )

    async def run_once(self) -> int:
        """Every office's due problems e-mailed; returns how many e-mails were sent."""
        now = self._now()
        async with self._factory() as db:
            offices = (
                await db.exec(
                    select(EmailAlertSetting, col(Office.name))
                    .join(Office, col(Office.id) == col(EmailAlertSetting.office_id))
                    .where(
                        col(EmailAlertSetting.enabled).is_(True),
                        col(EmailAlertSetting.address) != "",
                    )
                    .order_by(col(EmailAlertSetting.office_id))
                )
            ).all()
            await db.exec(delete(EmailAlert).where(col(EmailAlert.sent_at) < now - KEEP))
            await db.commit()
        sent = 0
        for setting, office_name in offices:
            sent += await self._alert_office(setting, office_name, now)
        return sent

    async def _alert_office(
        self, setting: EmailAlertSetting, office_name: str, now: datetime
    ) -> int:
        office_id, cutoff = setting.office_id, now - RESEND_AFTER
        async with self._factory() as db:
            problems = await find_problems(db, office_id, now, self._system_name)
            if not problems:
                await db.commit()
                return 0
            recent = set(
                (
                    await db.exec(
                        select(EmailAlert.problem_key).where(
                            col(EmailAlert.office_id) == office_id,
                            col(EmailAlert.sent_at) > cutoff,
                        )
                    )
                ).all()
            )
            due = [p for p in problems if p.key not in recent]
            claimed: list[Problem] = []
            for problem in due:
                params = {
                    "office_id": office_id,
                    "problem_key": problem.key,
                    "sent_at": now,
                    "cutoff": cutoff,
                }
                result = await db.exec(upsert(db, _claim), params=params)  # type: ignore[call-overload]
                if result.first() is not None:  # else another process has just sent it
                    claimed.append(problem)
            await db.commit()
        if not claimed:
            return 0
        message = compose(
            sender=self.mailer.config.sender,
            address=setting.address,
            office_name=office_name,
            problems=claimed,
            base_url=self._base_url,
            now=now,
        )
        try:
            await self.mailer.send(message)
        except MailError as exc:
            log.warning(
                "e-mail alert not sent office=%s problems=%d: %s",
                office_id,
                len(claimed),
                exc.detail,
            )
            async with self._factory() as db:  # tried again RETRY_AFTER from now
                await db.exec(
                    update(EmailAlert)
                    .where(
                        col(EmailAlert.office_id) == office_id,
                        col(EmailAlert.problem_key).in_([p.key for p in claimed]),
                        col(EmailAlert.sent_at) == now,
                    )
                    .values(sent_at=now - RESEND_AFTER + RETRY_AFTER)
                )
                await db.commit()
            return 0
        log.info("e-mail alert sent office=%s problems=%d", office_id, len(claimed))
        return 1


async def send_test(mailer: Mailer, address: str, office_name: str) -> None:
    """Send testvarsel på e-post: one e-mail now, or MailError with the reason."""
    await mailer.send(trial_message(mailer.config.sender, address, office_name, utcnow()))
