"""The SAF-T Financial reader: exact monthly movements for both schema versions, each way a
file disagrees with itself reported with its figures (never adjusted), each kind of
unacceptable file refused with a Norwegian message naming element and line, hostile XML
refused without expansion, and memory bounded on a large file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

import pytest

from services.saft import (
    ClosingMismatch,
    OpeningsUnbalanced,
    SaftRefused,
    UnbalancedTransaction,
    UnknownAccount,
    read_saft,
)
from tests.saft_files import (
    CLOSING_SHIFT,
    OPENING_SHIFT,
    UNBALANCE,
    UNKNOWN_ACCOUNT_AMOUNT,
    UNKNOWN_ACCOUNT_ID,
    Break,
    Written,
    random_books,
    write_saft,
)

ROOT = Path(__file__).resolve().parent.parent


def _sum_for(written: Written, account: str) -> Decimal:
    return sum((v for (a, _, _), v in written.movements.items() if a == account), Decimal("0.00"))


@pytest.mark.parametrize("version", ["1.10", "1.20", "1.30"])
def test_every_month_of_every_account_is_what_the_lines_say(tmp_path: Path, version: str):
    books = random_books(accounts=12, year=2024, seed=int(version[-2:]))
    written = write_saft(tmp_path / "saft.xml", books, version=version, lines_per_movement=3)

    saft = read_saft(written.path)

    assert saft.audit_file_version == version
    assert saft.schema_version == ("1.30" if version == "1.30" else "1.10")
    assert saft.registration_number == "987654325"
    assert saft.company_name == "Testfirma AS"
    assert (saft.period.start_year, saft.period.start_period) == (2024, 1)
    assert (saft.period.end_year, saft.period.end_period) == (2024, 12)
    assert saft.transaction_count == written.transaction_count
    assert saft.line_count == written.line_count
    assert list(saft.accounts) == sorted(books.openings)
    for account_id, opening in books.openings.items():
        account = saft.accounts[account_id]
        assert account.opening == opening
        assert account.closing == opening + sum(books.movements[account_id].values())
        if version == "1.30":
            assert (account.grouping_category, account.grouping_code) == ("RF-1167", account_id)
        else:
            assert account.grouping_category is None
        for month in range(1, 13):
            movement = saft.movement(account_id, 2024, month)
            assert movement == books.movements[account_id][month]
            assert isinstance(movement, Decimal)
    assert saft.findings == ()


def _read(tmp_path: Path, breakage: Break) -> tuple[Written, object]:
    books = random_books(accounts=6, year=2025)
    written = write_saft(tmp_path / "saft.xml", books, breakage=breakage, lines_per_movement=2)
    return written, read_saft(written.path)


def test_openings_that_do_not_sum_to_zero_are_reported(tmp_path: Path):
    written, saft = _read(tmp_path, Break.OPENINGS_UNBALANCED)
    assert saft.findings == (OpeningsUnbalanced(total=OPENING_SHIFT),)
    first = min(written.openings)
    assert saft.accounts[first].opening == written.openings[first]  # as the file says
    assert "100.00" in saft.findings[0].describe()


def test_closing_that_differs_from_opening_plus_movements_names_both(tmp_path: Path):
    written, saft = _read(tmp_path, Break.CLOSING_MISMATCH)
    first = min(written.openings)
    moved = _sum_for(written, first)
    expected = ClosingMismatch(
        account_id=first,
        opening=written.openings[first],
        movements=moved,
        computed_closing=written.openings[first] + moved,
        file_closing=written.openings[first] + moved + CLOSING_SHIFT,
    )
    assert saft.findings == (expected,)
    assert saft.findings[0].difference == CLOSING_SHIFT
    text = saft.findings[0].describe()
    assert str(expected.computed_closing) in text and str(expected.file_closing) in text
    # Never adjusted: the account keeps the file's own closing, the months what the lines say.
    assert saft.accounts[first].closing == expected.file_closing
    assert sum(saft.movements[first].values()) == moved


def test_a_transaction_whose_lines_do_not_balance_is_named_with_its_sums(tmp_path: Path):
    written, saft = _read(tmp_path, Break.UNBALANCED_TRANSACTION)
    assert len(saft.findings) == 1
    finding = saft.findings[0]
    assert isinstance(finding, UnbalancedTransaction)
    assert (finding.transaction_id, finding.journal_id) == ("T1", "GL")
    assert (finding.period_year, finding.period) == (2025, 1)
    amount = written.first_transaction_amount
    assert (finding.debit, finding.credit) == (amount + UNBALANCE, amount)
    assert finding.difference == UNBALANCE
    assert finding.line > 0
    for (account, year, month), amount in written.movements.items():
        assert saft.movement(account, year, month) == amount


def test_lines_on_an_account_missing_from_the_master_data_are_reported(tmp_path: Path):
    _, saft = _read(tmp_path, Break.UNKNOWN_ACCOUNT)
    assert saft.findings == (
        UnknownAccount(
            account_id=UNKNOWN_ACCOUNT_ID, line_count=1, movement=UNKNOWN_ACCOUNT_AMOUNT
        ),
    )
    assert UNKNOWN_ACCOUNT_ID not in saft.accounts
    assert saft.movement(UNKNOWN_ACCOUNT_ID, 2025, 1) == UNKNOWN_ACCOUNT_AMOUNT


def _refusal(path: Path) -> str:
    started = time.monotonic()
    with pytest.raises(SaftRefused) as refused:
        read_saft(path)
    assert time.monotonic() - started < 5
    return str(refused.value)


def test_a_file_that_is_not_well_formed_is_refused_naming_the_line(tmp_path: Path):
    # Large enough that the defect lies past line 65,535 and several windows in.
    books = random_books(accounts=5)
    written = write_saft(
        tmp_path / "s.xml", books, breakage=Break.NOT_WELL_FORMED, lines_per_movement=300
    )
    assert written.broken_line and written.broken_line > 65_535
    message = _refusal(written.path)
    assert "ikke velformet XML" in message
    assert f"linje {written.broken_line}" in message
    assert "Amount" in message


@pytest.mark.parametrize("version", ["1.20", "1.30"])
def test_a_file_invalid_against_its_xsd_is_refused_naming_element_and_line(
    tmp_path: Path, version: str
):
    books = random_books(accounts=5)
    written = write_saft(
        tmp_path / "s.xml",
        books,
        version=version,
        breakage=Break.XSD_INVALID,
        lines_per_movement=300,
    )
    assert written.broken_line and written.broken_line > 65_535
    message = _refusal(written.path)
    schema = "1.30" if version == "1.30" else "1.10"
    assert f"følger ikke XSD-skjemaet for SAF-T Financial {schema}" in message
    assert f"linje {written.broken_line}, element «Amount»" in message
    assert "har flere desimaler enn tillatt (2)" in message  # libxml2's words in Norwegian


def test_the_version_picks_the_schema(tmp_path: Path):
    # A 1.20 file (no GroupingCategory, allowed by XSD 1.10) that claims to be 1.30 is
    # checked against XSD 1.30, where GroupingCategory is mandatory.
    written = write_saft(tmp_path / "s.xml", random_books(accounts=3), version="1.20")
    text = written.path.read_text(encoding="utf-8")
    written.path.write_text(
        text.replace("<AuditFileVersion>1.20<", "<AuditFileVersion>1.30<"), encoding="utf-8"
    )
    message = _refusal(written.path)
    assert "XSD-skjemaet for SAF-T Financial 1.30" in message
    assert "element «AccountType»" in message
    assert "elementet skal ikke stå her; her ventes GroupingCategory" in message


def test_a_file_of_another_namespace_is_not_saft_financial(tmp_path: Path):
    written = write_saft(
        tmp_path / "s.xml", random_books(accounts=3), breakage=Break.WRONG_NAMESPACE
    )
    message = _refusal(written.path)
    assert "ikke en SAF-T Financial-fil" in message
    assert "«AuditFile»" in message and "linje 2" in message
    assert "urn:StandardAuditFile-Taxation-Financial:DK" in message


def test_a_file_of_an_unknown_version_is_refused(tmp_path: Path):
    written = write_saft(
        tmp_path / "s.xml", random_books(accounts=3), breakage=Break.UNKNOWN_VERSION
    )
    message = _refusal(written.path)
    assert "Ukjent SAF-T-versjon «2.00» i element AuditFileVersion (linje 4)" in message


@pytest.mark.parametrize("breakage", [Break.BILLION_LAUGHS, Break.EXTERNAL_ENTITY])
def test_entity_attacks_are_refused_at_once_without_expanding(tmp_path: Path, breakage: Break):
    written = write_saft(
        tmp_path / "s.xml", random_books(accounts=5), breakage=breakage, lines_per_movement=50
    )
    started = time.monotonic()
    with pytest.raises(SaftRefused) as refused:
        read_saft(written.path)
    assert time.monotonic() - started < 0.5
    message = str(refused.value)
    assert "DOCTYPE" in message and "linje" in message
    assert "lollol" not in message and "root:" not in message


def test_python_allocations_stay_far_below_the_file_size(tmp_path: Path):
    books = random_books(accounts=5)
    written = write_saft(tmp_path / "s.xml", books, lines_per_movement=200)
    size = written.path.stat().st_size
    read_saft(written.path)  # schema compiled and cached outside the measurement
    tracemalloc.start()
    try:
        saft = read_saft(written.path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert saft.line_count == written.line_count
    assert peak < size / 10, (peak, size)


def test_a_large_file_is_read_with_bounded_memory(tmp_path: Path):
    """~200,000 lines (~60 MB), read in a fresh process whose resident memory is sampled
    while it reads: the parsed tree lives in libxml2's memory, which tracemalloc does not
    see."""
    books = random_books(accounts=100, year=2025)
    written = write_saft(tmp_path / "big.xml", books, lines_per_movement=85)
    size = written.path.stat().st_size
    assert written.line_count >= 200_000
    script = f"""
import json, os, threading, time
from pathlib import Path
from services.saft import read_saft
from services.saft.reader import _schema

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

_schema("1.30")
baseline = rss()
highest = baseline
done = False

def sample():
    global highest
    while not done:
        highest = max(highest, rss())
        time.sleep(0.005)

sampler = threading.Thread(target=sample)
sampler.start()
started = time.monotonic()
saft = read_saft(Path({str(written.path)!r}))
elapsed = time.monotonic() - started
done = True
sampler.join()
print(json.dumps({{"rss_growth": highest - baseline, "lines": saft.line_count,
                   "seconds": elapsed, "findings": len(saft.findings)}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["lines"] == written.line_count
    assert figures["findings"] == 0
    assert figures["rss_growth"] < size / 4, figures
    lines_per_second = figures["lines"] / figures["seconds"]
    print(
        f"\n{written.line_count} lines, {size / 1e6:.1f} MB: {figures}, "
        f"{lines_per_second:.0f} lines/s"
    )
