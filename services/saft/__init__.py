"""SAF-T Financial files: the streaming reader (`reader`), the import into a client
(`importer`), uploads and the imports running in the background (`uploads`), and the
import history the pages and the API show (`history`)."""

from services.saft.reader import (
    Account,
    ClosingMismatch,
    Finding,
    OpeningsUnbalanced,
    SaftFile,
    SaftRefused,
    SelectionPeriod,
    UnbalancedTransaction,
    UnknownAccount,
    read_saft,
)

__all__ = [
    "Account",
    "ClosingMismatch",
    "Finding",
    "OpeningsUnbalanced",
    "SaftFile",
    "SaftRefused",
    "SelectionPeriod",
    "UnbalancedTransaction",
    "UnknownAccount",
    "read_saft",
]
