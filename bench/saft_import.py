"""Importing a large SAF-T Financial file into the database: the whole import of issue 17
(hash, streaming read with progress, then client, chart, balances, transaction lines, change
log and findings in one transaction), on SQLite and PostgreSQL.

A valid 1.30 file of BENCH_SAFT_LINES transaction lines (default 1,700,000, about 500 MB) is
generated once (tests/saft_files.py); each database then gets a fresh process that migrates
an empty database, resets its peak-memory mark, and imports the file through
`services.saft.importer` exactly as the app does. Reported: seconds, MB/s, lines/s and peak
RSS (VmHWM) of the importing process, and what the stored transaction lines (saft_line, the
drill-down's) take on disk. Target: peak RSS < 300 MB.

Variables: BENCH_SAFT_LINES (1700000), BENCH_SAFT_ACCOUNTS (200), BENCH_SAFT_DIR (where the
file is written; a temporary folder by default, removed after), BENCH_SAFT_DATABASES
(sqlite,postgresql).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    PYTHON,
    ROOT,
    emit,
    env_list,
    postgres_available,
    reset_peak_rss,
    rss_mb,
    say,
    scratch_database,
)
from bench.saft_read import generate

TARGET_RSS_MB = 300


async def import_once(kind: str, path: Path) -> dict[str, object]:
    """The measured part, in a process of its own."""
    from models import Office
    from services import integrations as integration_service
    from services.audit import Actor
    from services.connectors.saft import SaftSystem
    from services.db import create_engine, create_session_factory
    from services.saft import importer

    async with scratch_database(kind, "saft") as url:
        engine = create_engine(url)
        factory = create_session_factory(engine)
        async with factory() as db:
            office = Office(name="Benk AS")
            db.add(office)
            await db.commit()
            system = SaftSystem(max_upload_bytes=2**40, upload_dir=path.parent)
            actor = Actor(office_id=office.id or 0, label="benk")
            integration = await integration_service.create_file_integration(
                db, system, actor, raw_description="Benk"
            )
        reset_peak_rss()
        started = time.monotonic()
        row = await importer.begin(
            factory, integration, file_name=path.name, source=importer.Source.COMMAND
        )
        row = await importer.run(factory, row.id or 0, path)
        seconds = time.monotonic() - started
        _, peak = rss_mb()
        stored, line_bytes = await _line_storage(engine, kind)
        await engine.dispose()
    assert row.status == "imported", row.problems
    return {
        "seconds": round(seconds, 2),
        "lines": row.line_count,
        "transactions": row.transaction_count,
        "accounts": row.account_count,
        "rss_peak_mb": round(peak, 1),
        "lines_stored": stored,
        "line_table_mb": round(line_bytes / 1e6, 1),
        "bytes_per_line": round(line_bytes / stored) if stored else None,
    }


async def _line_storage(engine: object, kind: str) -> tuple[int, int]:
    """The transaction lines stored for the drill-down, and what their table (with its
    index) takes on disk."""
    from sqlalchemy import text

    size = (
        "SELECT SUM(pgsize) FROM dbstat WHERE name = 'saft_line'"  # WITHOUT ROWID: one tree
        if kind == "sqlite"
        else "SELECT pg_total_relation_size('saft_line')"
    )
    async with engine.connect() as connection:  # type: ignore[attr-defined]
        count = (await connection.execute(text("SELECT COUNT(*) FROM saft_line"))).scalar_one()
        bytes_ = (await connection.execute(text(size))).scalar_one()
    return int(count), int(bytes_ or 0)


def main() -> None:
    kinds = env_list("BENCH_SAFT_DATABASES", "sqlite,postgresql")
    if "postgresql" in kinds and not postgres_available():
        emit("saft.import", db="postgresql", skipped="no PostgreSQL")
        kinds = [k for k in kinds if k != "postgresql"]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_SAFT_DIR")) as folder:
        path, line_count, size_mb = generate(Path(folder), 1_700_000)
        for kind in kinds:
            done = subprocess.run(
                [PYTHON, "-m", "bench.saft_import", "--inner", kind, str(path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            assert figures["lines"] == line_count, (figures, line_count)
            assert figures["lines_stored"] == line_count, (figures, line_count)
            seconds = figures["seconds"]
            emit(
                "saft.import",
                db=kind,
                size_mb=round(size_mb, 1),
                mb_per_s=round(size_mb / seconds, 1),
                lines_per_s=round(figures["lines"] / seconds),
                **figures,
            )
            verdict = "OK" if figures["rss_peak_mb"] < TARGET_RSS_MB else "OVER TARGET"
            say(
                f"saft import ({kind}): {size_mb:.0f} MB, {figures['lines']:,} lines in "
                f"{seconds:.1f} s ({size_mb / seconds:.1f} MB/s, "
                f"{figures['lines'] / seconds:,.0f} lines/s), peak RSS "
                f"{figures['rss_peak_mb']} MB (target < {TARGET_RSS_MB} MB: {verdict}); "
                f"its lines take {figures['line_table_mb']} MB in saft_line "
                f"({figures['bytes_per_line']} bytes a line)"
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inner"]:
        print(json.dumps(asyncio.run(import_once(sys.argv[2], Path(sys.argv[3])))))
    else:
        main()
