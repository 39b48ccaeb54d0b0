"""Importing SAF-T files into an integration, on the real database: what the generator put in
a file is what the client's saldobalanse says, month by month; imperfect files are stored
with their findings; refused files and repeated files change nothing."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from models import Integration
from models.saft import ImportStatus
from services import balances
from services import integrations as integration_service
from services.audit import Actor
from services.connectors.saft import SaftSystem
from services.db import SessionFactory
from services.saft import history, importer
from services.settings import Settings
from tests.conftest import OfficeDb, query
from tests.saft_files import (
    CLOSING_SHIFT,
    OPENING_SHIFT,
    UNBALANCE,
    UNKNOWN_ACCOUNT_AMOUNT,
    UNKNOWN_ACCOUNT_ID,
    Break,
    random_books,
    write_saft,
)

pytestmark = pytest.mark.anyio
ZERO = Decimal("0.00")


@dataclass
class Office_:
    factory: SessionFactory
    integration: Integration


@pytest.fixture
async def office(settings: Settings, office_db: OfficeDb) -> Office_:
    async with office_db.factory() as db:
        system = SaftSystem(max_upload_bytes=10**9, upload_dir=settings.data_dir)
        integration = await integration_service.create_file_integration(
            db,
            system,
            Actor(office_id=office_db.office_id, label="test"),
            raw_description="Lokale klienter",
        )
    return Office_(office_db.factory, integration)


async def run_import(office: Office_, path: Path, name: str = "fil.xml"):
    row = await importer.begin(
        office.factory, office.integration, file_name=name, source=importer.Source.COMMAND
    )
    return await importer.run(office.factory, row.id or 0, path)


async def stored_months(settings: Settings, client_id: int) -> dict[tuple[str, int, int], Decimal]:
    rows = await query(
        settings,
        "SELECT account_number, year, month, amount FROM month_movement "
        f"WHERE client_id = {client_id}",
    )
    return {(str(a), y, m): money(amount) for a, y, m, amount in rows}


def nonzero(movements: dict[tuple[str, int, int], Decimal]) -> dict[tuple[str, int, int], Decimal]:
    return {k: v for k, v in movements.items() if v != 0}


async def test_every_month_of_every_account_is_what_the_file_says(
    settings: Settings, office: Office_, tmp_path: Path
) -> None:
    written = write_saft(
        tmp_path / "a.xml", random_books(accounts=25, year=2024), lines_per_movement=3
    )

    result = await run_import(office, written.path, "Visma export 2024.xml")

    assert result.status == ImportStatus.IMPORTED, result.problems
    assert (result.org_number, result.company_name) == ("987654325", "Testfirma AS")
    assert (result.first_year, result.first_month, result.last_year, result.last_month) == (
        2024,
        1,
        2024,
        12,
    )
    assert result.account_count == 25
    assert (result.transaction_count, result.line_count) == (
        written.transaction_count,
        written.line_count,
    )
    assert result.file_name == "Visma export 2024.xml"
    assert await stored_months(settings, result.client_id) == nonzero(written.movements)
    clients = await query(settings, "SELECT name, org_number, active, send_data FROM client")
    assert clients == [("Testfirma AS", "987654325", True, True)]
    async with office.factory() as db:
        for month in (1, 7, 12):
            report = await balances.trial_balance_report(
                db, result.client_id, balances.Period(2024, month, month)
            )
            for row in report.rows:
                account = str(row.number)
                before = sum(
                    (v for (a, _, m), v in written.movements.items() if a == account and m < month),
                    ZERO,
                )
                assert row.opening == written.openings[account] + before
                assert row.movement == written.movements.get((account, 2024, month), ZERO)
        december = await balances.trial_balance_report(
            db, result.client_id, balances.Period(2024, 1, 12)
        )
    moved = {a for (a, _, _), v in written.movements.items() if v}
    # Every account with an opening or a movement, closing exactly where the file does.
    assert {str(r.number): r.closing for r in december.rows} == {
        a: c for a, c in written.closings.items() if written.openings[a] or a in moved
    }
    assert december.balanced
    changes = await query(settings, "SELECT kind, year, month FROM data_change ORDER BY id")
    assert ("accounts", None, None) in changes
    assert ("balances", 2024, None) in changes  # the year's opening: the whole year moved


async def test_version_1_10_and_1_20_files_are_imported_too(
    settings: Settings, office: Office_, tmp_path: Path
) -> None:
    for version in ("1.10", "1.20"):
        written = write_saft(
            tmp_path / f"{version}.xml", random_books(year=2023, seed=3), version=version
        )
        result = await run_import(office, written.path)
        assert result.status == ImportStatus.IMPORTED, result.problems
        assert result.audit_file_version == version
        assert await stored_months(settings, result.client_id) == nonzero(written.movements)


async def test_the_same_file_twice_is_unchanged_and_writes_nothing(
    settings: Settings, office: Office_, tmp_path: Path
) -> None:
    written = write_saft(tmp_path / "a.xml", random_books())
    first = await run_import(office, written.path)
    changes = await query(settings, "SELECT count(*) FROM data_change")

    again = await run_import(office, written.path, "a-kopi.xml")

    assert again.status == ImportStatus.UNCHANGED
    assert again.client_id == first.client_id
    assert (again.first_year, again.last_month, again.line_count) == (2025, 12, first.line_count)
    assert await query(settings, "SELECT count(*) FROM data_change") == changes


@pytest.mark.parametrize(
    "breakage",
    [
        Break.NOT_WELL_FORMED,
        Break.WRONG_NAMESPACE,
        Break.UNKNOWN_VERSION,
        Break.XSD_INVALID,
        Break.BILLION_LAUGHS,
        Break.EXTERNAL_ENTITY,
    ],
)
async def test_a_refused_file_leaves_the_previous_state_whole(
    settings: Settings, office: Office_, tmp_path: Path, breakage: Break
) -> None:
    good = write_saft(tmp_path / "good.xml", random_books(seed=5))
    assert (await run_import(office, good.path)).status == ImportStatus.IMPORTED
    before = await snapshot(settings)

    bad = write_saft(tmp_path / "bad.xml", random_books(seed=6), breakage=breakage)
    result = await run_import(office, bad.path)

    assert result.status == ImportStatus.REFUSED
    assert result.problems and result.client_id is None
    assert await snapshot(settings) == before


async def test_an_invalid_organisation_number_is_refused(
    settings: Settings, office: Office_, tmp_path: Path
) -> None:
    written = write_saft(tmp_path / "a.xml", random_books(), registration_number="999888777")
    result = await run_import(office, written.path)
    assert result.status == ImportStatus.REFUSED
    assert "999888777" in (result.problems or "")
    assert "organisasjonsnummer" in (result.problems or "")
    assert await query(settings, "SELECT count(*) FROM client") == [(0,)]


@pytest.mark.parametrize(
    "breakage",
    [
        Break.OPENINGS_UNBALANCED,
        Break.CLOSING_MISMATCH,
        Break.UNBALANCED_TRANSACTION,
        Break.UNKNOWN_ACCOUNT,
    ],
)
async def test_an_imperfect_file_is_stored_as_it_is_with_its_findings(
    settings: Settings, office: Office_, tmp_path: Path, breakage: Break
) -> None:
    written = write_saft(tmp_path / "a.xml", random_books(seed=9), breakage=breakage)

    result = await run_import(office, written.path)

    assert result.status == ImportStatus.IMPORTED, result.problems
    # Never adjusted: the movements are the lines', the openings the master data's.
    assert await stored_months(settings, result.client_id) == nonzero(written.movements)
    findings = await query(
        settings,
        "SELECT kind, account, opening, computed_closing, file_closing, debit, credit, total, "
        f"line_count, movements FROM saft_finding WHERE import_id = {result.id}",
    )
    kinds = {row[0] for row in findings}
    first = min(written.openings)
    if breakage is Break.OPENINGS_UNBALANCED:
        assert kinds == {"openings_unbalanced"}
        assert money(findings[0][7]) == OPENING_SHIFT
    elif breakage is Break.CLOSING_MISMATCH:
        assert kinds == {"closing_mismatch"}
        _, account, _, computed, in_file, *_ = findings[0]
        assert account == first
        assert money(in_file) - money(computed) == CLOSING_SHIFT
    elif breakage is Break.UNBALANCED_TRANSACTION:
        # The extra debit also leaves that account's closing off from its lines.
        assert "unbalanced_transaction" in kinds
        row = next(r for r in findings if r[0] == "unbalanced_transaction")
        assert money(row[5]) - money(row[6]) == UNBALANCE
    else:
        assert kinds == {"unknown_account"}
        assert findings[0][1] == UNKNOWN_ACCOUNT_ID
        assert money(findings[0][9]) == UNKNOWN_ACCOUNT_AMOUNT
        names = await query(
            settings, f"SELECT number FROM account WHERE number = {UNKNOWN_ACCOUNT_ID}"
        )
        assert names == []  # not in the chart: the saldobalanse shows it without a name


async def test_a_newer_file_replaces_its_months_and_another_year_adds_a_year(
    settings: Settings, office: Office_, tmp_path: Path
) -> None:
    first = write_saft(tmp_path / "2025a.xml", random_books(year=2025, seed=1, months=range(1, 7)))
    await run_import(office, first.path)
    newer = write_saft(tmp_path / "2025b.xml", random_books(year=2025, seed=2, months=range(1, 10)))
    result = await run_import(office, newer.path)
    older = write_saft(tmp_path / "2024.xml", random_books(year=2024, seed=3, accounts=10))
    await run_import(office, older.path)

    stored = await stored_months(settings, result.client_id)
    assert {k: v for k, v in stored.items() if k[1] == 2025} == nonzero(newer.movements)
    assert {k: v for k, v in stored.items() if k[1] == 2024} == nonzero(older.movements)
    openings = await query(settings, "SELECT DISTINCT year FROM year_opening ORDER BY year")
    assert openings == [(2024,), (2025,)]
    # The older file's smaller chart removes nothing from the newest chart.
    assert await query(settings, "SELECT count(*) FROM account WHERE removed_at IS NULL") == [(20,)]


def money(value: object) -> Decimal:
    return Decimal(value) / 100 if isinstance(value, int) else Decimal(str(value))


async def snapshot(settings: Settings) -> dict[str, list[tuple]]:
    tables = ("client", "account", "year_opening", "month_movement", "data_change", "saft_finding")
    return {t: sorted(map(repr, await query(settings, f"SELECT * FROM {t}"))) for t in tables}


@pytest.mark.parametrize("order", ["master_first", "periods_first"])
async def test_a_split_export_master_and_period_file_add_up_to_the_whole(
    settings: Settings, office: Office_, tmp_path: Path, order: str
) -> None:
    whole = write_saft(tmp_path / "whole.xml", random_books(year=2024, seed=21))
    text = whole.path.read_text(encoding="utf-8")
    master = tmp_path / "master.xml"
    master.write_text(
        re.sub(r"<GeneralLedgerEntries>.*</GeneralLedgerEntries>\n", "", text, flags=re.S)
    )
    periods = tmp_path / "periods.xml"
    periods.write_text(
        re.sub(r"<GeneralLedgerAccounts>.*</GeneralLedgerAccounts>\n", "", text, flags=re.S)
    )
    files = [master, periods] if order == "master_first" else [periods, master]

    results = [await run_import(office, path) for path in files]

    assert [r.status for r in results] == [ImportStatus.IMPORTED] * 2, [r.problems for r in results]
    client_id = results[0].client_id
    assert results[1].client_id == client_id
    assert await stored_months(settings, client_id) == nonzero(whole.movements)
    openings = await query(settings, "SELECT account_number, amount FROM year_opening")
    assert {str(a): money(v) for a, v in openings} == {a: v for a, v in whole.openings.items() if v}
    assert await query(settings, "SELECT count(*) FROM account WHERE removed_at IS NULL") == [(20,)]
    assert await query(settings, "SELECT count(*) FROM saft_finding") == [(0,)]


def test_balance_accounts_are_told_by_their_first_digit() -> None:
    assert [importer.is_balance_account(a) for a in ("1920", "2050", "15000", "20500")] == [
        True
    ] * 4
    assert [importer.is_balance_account(a) for a in ("3000", "8960", "30000", "70100")] == [
        False
    ] * 4


async def test_a_b_then_a_again_is_imported_not_taken_for_unchanged(
    settings: Settings, office: Office_, tmp_path: Path
) -> None:
    a = write_saft(tmp_path / "a.xml", random_books(year=2025, seed=31))
    b = write_saft(tmp_path / "b.xml", random_books(year=2025, seed=32))
    await run_import(office, a.path)
    await run_import(office, b.path)

    again = await run_import(office, a.path)

    assert again.status == ImportStatus.IMPORTED
    assert await stored_months(settings, again.client_id) == nonzero(a.movements)


async def test_an_unchanged_file_reports_the_findings_it_has(
    settings: Settings, office: Office_, tmp_path: Path
) -> None:
    broken = write_saft(tmp_path / "a.xml", random_books(seed=33), breakage=Break.CLOSING_MISMATCH)
    first = await run_import(office, broken.path)
    again = await run_import(office, broken.path)
    assert again.status == ImportStatus.UNCHANGED
    counts = await query(
        settings, "SELECT import_id, count(*) FROM saft_finding GROUP BY import_id ORDER BY 1"
    )
    assert counts == [(first.id, 1), (again.id, 1)]


async def test_an_older_file_adds_accounts_but_changes_none_of_the_newest_chart(
    settings: Settings, office: Office_, tmp_path: Path
) -> None:
    newest = write_saft(tmp_path / "2025.xml", random_books(year=2025, seed=34, accounts=10))
    await run_import(office, newest.path)
    older_text = write_saft(
        tmp_path / "2024.xml", random_books(year=2024, seed=35, accounts=12)
    ).path.read_text(encoding="utf-8")
    older = tmp_path / "2024-renamed.xml"
    older.write_text(older_text.replace("Konto 1000<", "Kasse (gammelt navn)<"), encoding="utf-8")

    result = await run_import(office, older)

    assert result.status == ImportStatus.IMPORTED, result.problems
    names = dict(await query(settings, "SELECT number, name FROM account"))
    assert names[1000] == "Konto 1000"  # the newest file's name stays
    assert len(names) == 12  # the two accounts only the older file has are added


async def test_a_file_from_mid_year_keeps_the_months_before_it(
    settings: Settings, office: Office_, tmp_path: Path
) -> None:
    whole_year = write_saft(tmp_path / "2025.xml", random_books(year=2025, seed=36))
    await run_import(office, whole_year.path)
    later = write_saft(tmp_path / "h2.xml", random_books(year=2025, seed=37, months=range(7, 13)))
    text = later.path.read_text(encoding="utf-8")
    later.path.write_text(text.replace("<PeriodStart>1<", "<PeriodStart>7<"), encoding="utf-8")

    result = await run_import(office, later.path)

    assert result.status == ImportStatus.IMPORTED, result.problems
    assert (result.first_month, result.last_month) == (7, 12)
    stored = await stored_months(settings, result.client_id)
    assert {k: v for k, v in stored.items() if k[2] < 7} == {
        k: v for k, v in nonzero(whole_year.movements).items() if k[2] < 7
    }
    assert {k: v for k, v in stored.items() if k[2] >= 7} == nonzero(later.movements)
    async with office.factory() as db:
        july = await balances.trial_balance_report(
            db, result.client_id, balances.Period(2025, 7, 7)
        )
    assert {str(r.number): r.opening for r in july.rows if r.opening} == {
        a: v for a, v in later.openings.items() if v
    }
    async with office.factory() as db:
        assert await history.first_month_covered(db, result.client_id, 2025) == 1  # both files


async def test_lines_before_the_selection_are_refused(
    settings: Settings, office: Office_, tmp_path: Path
) -> None:
    written = write_saft(tmp_path / "a.xml", random_books(seed=38))
    text = written.path.read_text(encoding="utf-8")
    written.path.write_text(text.replace("<PeriodStart>1<", "<PeriodStart>3<"), encoding="utf-8")
    result = await run_import(office, written.path)
    assert result.status == ImportStatus.REFUSED
    assert "før utvalgsperioden" in (result.problems or "")


async def test_two_files_of_a_new_company_imported_at_once_make_one_client(
    settings: Settings, office: Office_, tmp_path: Path
) -> None:
    first = write_saft(tmp_path / "2024.xml", random_books(year=2024, seed=39))
    second = write_saft(tmp_path / "2025.xml", random_books(year=2025, seed=40))

    results = await asyncio.gather(run_import(office, first.path), run_import(office, second.path))

    assert [r.status for r in results] == [ImportStatus.IMPORTED] * 2, [r.problems for r in results]
    assert await query(settings, "SELECT count(*) FROM client") == [(1,)]
    stored = await stored_months(settings, results[0].client_id)
    assert stored == nonzero(first.movements) | nonzero(second.movements)
