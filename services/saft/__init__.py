"""SAF-T Financial files: the streaming reader (`reader`) that everything importing a file
builds on."""

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
