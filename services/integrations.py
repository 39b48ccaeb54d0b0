"""Creating, changing, refreshing and deleting integrations. Every lookup is office-scoped."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration
from models.base import utcnow
from services import audit
from services import clients as client_service
from services.audit import Actor
from services.connectors.base import (
    ConnectKind,
    Connector,
    ErpError,
    ErpUnavailable,
    FileSystem,
    KeyInfo,
    KeyKind,
    KeyRejected,
    RateLimited,
    RemoteClient,
    SystemDescription,
)
from services.connectors.registry import NOT_HERE, Connectors
from services.crypto import KeyVault, last4
from services.personal_data import contains_email, contains_national_id, contains_phone_number

MAX_DESCRIPTION = 200
MAX_KEY = 2000
# Integration.key_kind of an integration without a key (its data arrives as files).
FILE_KEY_KIND = "none"
# Integration.key_kind of an integration whose keys are its clients' (onboarded: PowerOffice).
CLIENT_KEYS_KIND = "per_client"


class InputError(ValueError):
    """Bad input from the accountant: a Norwegian message for one form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class SameKeyInUse(Exception):
    """Ny integrasjon: the key is one an integration of the office already has (the same
    company in the same system, the same kind of key, clients in common). Two of them would
    sync the same clients twice, sharing the system's rate limit."""

    def __init__(self, existing: Integration) -> None:
        super().__init__(f"the key is already used by integration {existing.id}")
        self.existing = existing


@dataclass(frozen=True)
class KeyReach:
    """What a new key in Endre system would do to the integration's clients."""

    reached: int  # of the integration's clients, those the key reaches
    total: int  # the integration's clients
    losing: int  # clients reached today that the key does not reach: they lose access
    added: int  # companies the key reaches that are no client yet: they come in as new
    # The key's company when it is an own-company key on an integration of clients.
    own_company: str = ""


class KeyReachesFewer(Exception):
    """Endre system: the new key would leave clients without access. Nothing is saved until
    the accountant confirms."""

    def __init__(self, reach: KeyReach) -> None:
        super().__init__(f"the key reaches {reach.reached} of {reach.total} clients")
        self.reach = reach


@dataclass(frozen=True)
class RefreshResult:
    added: int
    lost: int
    regained: int


def display_name(integration: Integration, system_name: str) -> str:
    """What the accountant calls an integration: "<system> - <description or company>"."""
    label = integration.description or integration.erp_company_name
    return f"{system_name} - {label}" if label else system_name


def audit_target(integration: Integration, system_name: str) -> str:
    """How the audit log names an integration."""
    return f"Integrasjon: {display_name(integration, system_name)}"


async def client_count(db: AsyncSession, integration: Integration) -> int:
    return (await client_service.counts(db, integration.id or 0)).total


def key_of(vault: KeyVault, integration: Integration, client: Client) -> str:
    """The key a client is reached with: its own where the system gives one per client
    (PowerOffice Go), else the integration's."""
    return vault.decrypt(client.key_ciphertext or integration.key_ciphertext)


def takes_files(integration: Integration) -> bool:
    """An integration whose data arrives as files (created without a key)."""
    return integration.key_kind == FILE_KEY_KIND


def has_client_keys(integration: Integration) -> bool:
    """An integration whose clients each have their own key (connected by onboarding)."""
    return integration.key_kind == CLIENT_KEYS_KIND


def connector_of(connectors: Connectors, integration: Integration) -> Connector:
    """The integration's connector; none in this installation is the accountant's to hear."""
    connector = connectors.get(integration.system)
    if connector is None:
        raise InputError("key", NOT_HERE)
    return connector


def chosen_file_system(connectors: Connectors, system: str) -> FileSystem | None:
    """The system chosen in Ny integrasjon if its data arrives as files."""
    return connectors.file_system(system)


def chosen_key_system(connectors: Connectors, system: str) -> Connector:
    """The system chosen in Ny integrasjon, if it is one connected with a key; none chosen:
    the first, which the form shows chosen."""
    if not system:
        connector = next(iter(connectors.connectable_by(ConnectKind.KEY)), None)
    else:
        connector = connectors.get(system)
    if connector is None or connector.capabilities.connect is not ConnectKind.KEY:
        raise InputError("system", "Velg et regnskapssystem fra listen.")
    return connector


def clean_key(raw: str) -> str:
    # Keys are often pasted wrapped over lines (as the guide shows them): join the pieces.
    return "".join(raw.split())


def check_description(raw: str) -> str:
    description = " ".join(raw.split())
    if len(description) > MAX_DESCRIPTION:
        raise InputError("description", f"Beskrivelsen kan ha høyst {MAX_DESCRIPTION} tegn.")
    if contains_email(description):
        raise InputError(
            "description",
            "Beskrivelsen ser ut til å inneholde en e-postadresse. "
            "Ikke fyll inn personopplysninger i feltet.",
        )
    if contains_national_id(description):
        raise InputError(
            "description",
            "Beskrivelsen ser ut til å inneholde et fødselsnummer. "
            "Ikke fyll inn personopplysninger i feltet.",
        )
    if contains_phone_number(description):
        raise InputError(
            "description",
            "Beskrivelsen ser ut til å inneholde et telefonnummer. "
            "Ikke fyll inn personopplysninger i feltet.",
        )
    return description


async def inspect_key(connector: Connector, raw_key: str) -> tuple[str, KeyInfo]:
    key = clean_key(raw_key)
    name = connector.display_name
    if not key:
        raise InputError("key", f"Fyll inn brukernøkkelen fra {name}.")
    if len(key) > MAX_KEY:
        raise InputError("key", f"Dette ser ikke ut som en brukernøkkel fra {name} (for lang).")
    try:
        return key, await connector.inspect_key(key)
    except KeyRejected:
        raise InputError(
            "key",
            f"{name} godtok ikke brukernøkkelen. Sjekk at du har kopiert hele nøkkelen, "
            f"og at den ikke er slettet eller utløpt i {name}.",
        ) from None
    except RateLimited:
        raise InputError(
            "key",
            f"{name} ber oss vente fordi det er sendt for mange forespørsler. "
            "Prøv igjen om et minutt.",
        ) from None
    except ErpUnavailable:
        raise InputError(
            "key",
            f"Fikk ikke kontakt med {name} akkurat nå. Ingenting er lagret. Prøv igjen om litt.",
        ) from None
    except ErpError as exc:
        reference = f" Referanse: {exc.request_id}." if exc.request_id else ""
        raise InputError(
            "key",
            f"{name} svarte med en feil (status {exc.status}). Ingenting er lagret.{reference}",
        ) from None


async def create_integration(
    db: AsyncSession,
    vault: KeyVault,
    connector: Connector,
    actor: Actor,
    *,
    raw_key: str,
    raw_description: str,
    same_key_as: int | None = None,
) -> Integration:
    """A new integration with a key. A key an integration of the office already has is
    refused (SameKeyInUse) unless `same_key_as` is that integration: the accountant saw the
    warning and wants the second one all the same."""
    description = check_description(raw_description)
    key, info = await inspect_key(connector, raw_key)
    existing = await integration_with_same_key(db, actor.office_id, connector.system, info)
    if existing is not None and existing.id != same_key_as:
        raise SameKeyInUse(existing)
    integration = Integration(
        office_id=actor.office_id,
        system=connector.system,
        description=description,
        key_ciphertext=vault.encrypt(key),
        key_last4=last4(key),
        key_kind=info.kind,
        erp_company_id=info.company_id,
        erp_company_name=info.company_name,
        clients_refreshed_at=utcnow(),
    )
    db.add(integration)
    await db.flush()
    merged = await _merge_clients(db, integration, info.clients, mark_new=False)
    record_created(db, actor, integration, connector.display_name, clients=merged.added)
    await db.commit()
    return integration


def record_created(
    db: AsyncSession,
    actor: Actor,
    integration: Integration,
    system_name: str,
    *,
    clients: int,
) -> None:
    """Integrasjon opprettet, in the audit log (its key is not named)."""
    audit.record(
        db,
        actor,
        "integration.created",
        audit_target(integration, system_name),
        system=system_name,
        description=integration.description,
        clients=clients,
    )


async def create_file_integration(
    db: AsyncSession, system: FileSystem, actor: Actor, *, raw_description: str
) -> Integration:
    """An integration that takes files: no key; its clients come with the files."""
    integration = Integration(
        office_id=actor.office_id,
        system=system.system,
        description=check_description(raw_description),
        key_ciphertext="",
        key_last4="",
        key_kind=FILE_KEY_KIND,
        erp_company_id=0,
        erp_company_name="",
    )
    db.add(integration)
    await db.flush()
    record_created(db, actor, integration, system.display_name, clients=0)
    await db.commit()
    return integration


async def change_description(
    db: AsyncSession,
    integration: Integration,
    actor: Actor,
    system: SystemDescription,
    *,
    raw_description: str,
) -> None:
    """Endre system for an integration without a key: only its description changes."""
    description = check_description(raw_description)
    changes = _changed("description", integration.description, description)
    integration.description = description
    integration.updated_at = utcnow()
    record_changed(db, actor, integration, system.display_name, changes)
    await db.commit()


def _changed(field: str, before: object, after: object) -> dict[str, object]:
    return {field: {"before": before, "after": after}} if before != after else {}


def record_changed(
    db: AsyncSession,
    actor: Actor,
    integration: Integration,
    system_name: str,
    changes: dict[str, object],
    **details: object,
) -> None:
    """Integrasjon endret, in the audit log: each changed field before → after, a new key
    only as changed. Nothing is recorded when nothing changed."""
    if changes:
        target = audit_target(integration, system_name)
        audit.record(db, actor, "integration.changed", target, **changes, **details)


async def change_system(
    db: AsyncSession,
    vault: KeyVault,
    connector: Connector,
    integration: Integration,
    actor: Actor,
    *,
    raw_key: str,
    raw_description: str,
    confirmed: bool = False,
) -> RefreshResult | None:
    """Endre system: new description, and a new key if one is given (clients are kept).
    A key that some of today's clients would lose access with is not saved unless
    `confirmed`: KeyReachesFewer says how many it reaches, for the accountant to decide."""
    description = check_description(raw_description)
    changes = _changed("description", integration.description, description)
    result = None
    if clean_key(raw_key):
        key, info = await inspect_key(connector, raw_key)
        if info.company_id != integration.erp_company_id:
            raise InputError(
                "key",
                f"Nøkkelen tilhører et annet selskap i {connector.display_name} "
                f"({info.company_name}) enn "
                f"denne integrasjonen ({integration.erp_company_name}). Opprett heller en ny "
                "integrasjon for den nøkkelen.",
            )
        reach = await key_reach(db, integration, info)
        if reach.losing and not confirmed:
            raise KeyReachesFewer(reach)
        integration.key_ciphertext = vault.encrypt(key)
        integration.key_last4 = last4(key)
        integration.key_kind = info.kind
        if integration.key_status != "ok":
            # The clients that waited for a working key are synced again at once.
            integration.key_status = "ok"
            await db.exec(
                update(Client)
                .where(col(Client.integration_id) == integration.id, col(Client.active))
                .values(sync_due_at=utcnow())
            )
        result = await _merge_clients(
            db, integration, info.clients, mark_new=True, drop_unused=True
        )
        integration.clients_refreshed_at = utcnow()
        changes["key"] = audit.CHANGED
    integration.description = description
    integration.updated_at = utcnow()
    counts = (
        {"added": result.added, "lost": result.lost, "regained": result.regained} if result else {}
    )
    record_changed(db, actor, integration, connector.display_name, changes, **counts)
    await db.commit()
    return result


async def refresh_clients(
    db: AsyncSession,
    vault: KeyVault,
    connector: Connector,
    integration: Integration,
    actor: Actor | None = None,
) -> RefreshResult:
    """Oppdater klientliste: new clients come in inactive and marked new; none is deleted.
    Asked for by a person (`actor`), it is recorded in the audit log; the nightly refresh
    is not."""
    name = connector.display_name
    try:
        info = await connector.inspect_key(vault.decrypt(integration.key_ciphertext))
    except KeyRejected:
        raise InputError(
            "key",
            f"{name} godtar ikke lenger nøkkelen til denne integrasjonen. "
            f"Lag en ny nøkkel i {name} og bruk Endre system.",
        ) from None
    except ErpError as exc:
        raise InputError(
            "key",
            f"Fikk ikke hentet klientlisten fra {name} akkurat nå. "
            "Ingenting er endret. Prøv igjen om litt."
            + (f" Referanse: {exc.request_id}." if exc.request_id else ""),
        ) from None
    result = await _merge_clients(db, integration, info.clients, mark_new=True)
    integration.clients_refreshed_at = utcnow()
    if actor is not None:
        audit.record(
            db,
            actor,
            "integration.refreshed",
            audit_target(integration, connector.display_name),
            added=result.added,
            regained=result.regained,
            lost=result.lost,
        )
    await db.commit()
    return result


async def key_reach(db: AsyncSession, integration: Integration, info: KeyInfo) -> KeyReach:
    """How many of the integration's clients a new key reaches, and who would lose access."""
    reachable = {c.erp_id for c in info.clients}
    clients = await _clients_of(db, integration)
    known = {c.erp_id for c in clients}
    own_company = (
        info.company_name
        if info.kind == KeyKind.OWN_COMPANY and integration.key_kind == KeyKind.ACCOUNTANT
        else ""
    )
    return KeyReach(
        reached=sum(c.erp_id in reachable for c in clients),
        total=len(clients),
        losing=sum(
            c.erp_id not in reachable and not c.access_lost and not _unused(c) for c in clients
        ),
        added=len(reachable - known),
        own_company=own_company,
    )


async def integration_with_same_key(
    db: AsyncSession, office_id: int, system: str, info: KeyInfo
) -> Integration | None:
    """The office's integration that already reaches these clients with a key of this kind
    from this company. Keys are stored encrypted with a random IV, so the key text cannot be
    compared; the company the key belongs to and its kind can. Two employees of an office may
    hold keys to different clients, so only an integration with clients in common counts."""
    reachable = [c.erp_id for c in info.clients]
    if not reachable:
        return None
    return (
        await db.exec(
            select(Integration)
            .where(
                col(Integration.office_id) == office_id,
                col(Integration.system) == system,
                col(Integration.erp_company_id) == info.company_id,
                col(Integration.key_kind) == info.kind,
                col(Integration.id).in_(
                    select(Client.integration_id).where(col(Client.erp_id).in_(reachable))
                ),
            )
            .order_by(col(Integration.id))
            .limit(1)
        )
    ).first()


def _unused(client: Client) -> bool:
    """A client a key change brought in that nobody has touched since (still marked new,
    never switched on, never synced): nothing of it would be lost without it."""
    return client.is_new and not client.active and client.synced_at is None


async def _clients_of(db: AsyncSession, integration: Integration) -> list[Client]:
    assert integration.id is not None
    return list(
        (await db.exec(select(Client).where(col(Client.integration_id) == integration.id))).all()
    )


async def _merge_clients(
    db: AsyncSession,
    integration: Integration,
    remote: list[RemoteClient],
    *,
    mark_new: bool,
    drop_unused: bool = False,
) -> RefreshResult:
    """The key's companies as the integration's clients. Those it no longer reaches stay, as
    without access (their settings and data are kept for a key that reaches them again);
    with `drop_unused` (a new key in Endre system), an unused client is removed instead: one
    an earlier key brought in, such as the own company of an own-company key saved by
    mistake, would otherwise stay behind as a row without access when the right key is back."""
    assert integration.id is not None
    existing = {c.erp_id: c for c in await _clients_of(db, integration)}
    seen: set[int] = set()
    added = regained = 0
    for item in remote:
        if item.erp_id in seen:
            continue
        seen.add(item.erp_id)
        client = existing.get(item.erp_id)
        if client is None:
            client = Client(
                integration_id=integration.id,
                erp_id=item.erp_id,
                name="",
                sort_key="",
                search_text="",
                is_new=mark_new,
            )
            db.add(client)
            added += 1
        elif client.access_lost:
            client.access_lost = False
            regained += 1
        if (client.name, client.org_number) != (item.name, item.org_number):
            client_service.describe(client, item.name, item.org_number)
            client.updated_at = utcnow()
    lost = 0
    for erp_id, client in existing.items():
        if erp_id not in seen and drop_unused and _unused(client):
            await db.delete(client)
        elif erp_id not in seen and not client.access_lost:
            client.access_lost = True
            client.updated_at = utcnow()
            lost += 1
    await db.flush()
    return RefreshResult(added=added, lost=lost, regained=regained)


async def list_integrations(db: AsyncSession, office_id: int) -> list[Integration]:
    return list(
        (
            await db.exec(
                select(Integration)
                .where(col(Integration.office_id) == office_id)
                .order_by(col(Integration.created_at), col(Integration.id))
            )
        ).all()
    )


async def get_integration(
    db: AsyncSession, office_id: int, integration_id: int
) -> Integration | None:
    integration = await db.get(Integration, integration_id)
    if integration is None or integration.office_id != office_id:
        return None
    return integration


async def delete_integration(
    db: AsyncSession, integration: Integration, actor: Actor, system: SystemDescription
) -> None:
    """Slett system: the integration with its clients and their data; recorded."""
    audit.record(
        db,
        actor,
        "integration.deleted",
        audit_target(integration, system.display_name),
        name=display_name(integration, system.display_name),
        system=system.display_name,
        clients=await client_count(db, integration),
    )
    await db.delete(integration)
    await db.commit()
