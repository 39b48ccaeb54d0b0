"""SAF-T Financial files: the system for every accounting system that exports them (local
systems, and any the office has no connector for). Files arrive; nothing is fetched, so
this system has no connector methods: services/saft imports what arrives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from services.connectors.base import Capabilities, ConnectKind, Wording
from services.settings import SettingsError

if TYPE_CHECKING:
    import httpx

    from services.metrics import Metrics

SYSTEM = "saft"
MB = 1024 * 1024
# Real files are hundreds of MB; above 2 GB systems split them (master and period files).
DEFAULT_MAX_UPLOAD_MB = 2048


NOTHING_TO_GRANT = "Filen kommer fra regnskapssystemet; her trengs ingen tilgang."


class SaftSystem:
    """How pages and the import describe the system, and the limits of what it accepts."""

    system = SYSTEM
    display_name = "SAF-T-fil"
    capabilities = Capabilities(connect=ConnectKind.FILE, webhooks=False)
    wording = Wording(
        no_api_access=NOTHING_TO_GRANT,
        access_lost=NOTHING_TO_GRANT,
        no_clients="Last opp en SAF-T-fil: den første filen for et selskap legger det til.",
        guide_path=f"/guide/{SYSTEM}",
    )

    def __init__(self, *, max_upload_bytes: int, upload_dir: Path) -> None:
        self.max_upload_bytes = max_upload_bytes
        self.upload_dir = upload_dir


@dataclass(frozen=True)
class SaftSettings:
    """SAFT_MAX_UPLOAD_MB (default 2048) and SAFT_UPLOAD_DIR (default DATA_DIR/saft-uploads),
    where uploads are streamed while they are imported."""

    max_upload_bytes: int
    upload_dir: Path
    system: str = SYSTEM

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, demo: bool, port: int) -> SaftSettings:
        raw = env.get("SAFT_MAX_UPLOAD_MB", "").strip() or str(DEFAULT_MAX_UPLOAD_MB)
        if not raw.isdigit() or int(raw) < 1:
            raise SettingsError("SAFT_MAX_UPLOAD_MB must be a whole number of megabytes (>= 1)")
        data_dir = Path(env.get("DATA_DIR", "data")).resolve()
        upload_dir = Path(env.get("SAFT_UPLOAD_DIR", "").strip() or data_dir / "saft-uploads")
        return cls(max_upload_bytes=int(raw) * MB, upload_dir=upload_dir.resolve())

    def connector(self, http: httpx.AsyncBaseTransport, metrics: Metrics) -> SaftSystem:
        return SaftSystem(max_upload_bytes=self.max_upload_bytes, upload_dir=self.upload_dir)
