"""The systems this product speaks, and the connector of each, by `Integration.system`.

Adding a system: its connector module with a settings block (services/connectors/base.py),
its simulator, and one line in SYSTEMS. Outside the connectors, the product looks a
connector up here by the integration's system and names none (the demo names the systems
whose simulator it runs: services/demo.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from services.connectors.base import (
    Capabilities,
    ConnectKind,
    Connector,
    FileSystem,
    SystemDescription,
    SystemSettingsFactory,
    Wording,
)
from services.connectors.poweroffice import PowerOfficeSettings
from services.connectors.saft import SaftSettings
from services.connectors.tripletex import TripletexSettings

# The registration: one line per system, in the order the UI offers them.
SYSTEMS: tuple[SystemSettingsFactory, ...] = (TripletexSettings, PowerOfficeSettings, SaftSettings)
# Shown in Ny integrasjon as not offered here: coming, or registered above but not set up in
# this installation (PowerOffice Go without the operator's keys).
PLANNED: tuple[tuple[str, str], ...] = (("poweroffice", "PowerOffice Go"), ("fiken", "Fiken"))


class UnknownSystem(KeyError):
    """An integration of a system this process has no connector for."""


NOT_HERE = "Systemet er ikke tilgjengelig i denne installasjonen. Kontakt driftsansvarlig."


class UnavailableSystem:
    """How pages show an integration of a system this installation has no connector for
    (taken out of SYSTEMS, or written by a newer release): by its stored name, with nothing
    to offer but deleting it."""

    capabilities = Capabilities(connect=ConnectKind.KEY, webhooks=False)
    wording = Wording(no_api_access=NOT_HERE, access_lost=NOT_HERE, no_clients=NOT_HERE)

    def __init__(self, system: str) -> None:
        self.system = system
        self.display_name = system


class Connectors(Mapping[str, Connector]):
    """The connectors of this process, by system; iterates in registration order. As a
    mapping it holds the systems data is fetched from (what syncs run against); systems
    whose data arrives as files are beside it (`file_system`)."""

    def __init__(self, connectors: Iterable[Connector | FileSystem]) -> None:
        self._by_system: dict[str, Connector] = {}
        self._files: dict[str, FileSystem] = {}
        for connector in connectors:
            if connector.system in self._by_system or connector.system in self._files:
                raise ValueError(f"two connectors for the system {connector.system!r}")
            if isinstance(connector, Connector):
                self._by_system[connector.system] = connector
            else:
                self._files[connector.system] = connector

    def __getitem__(self, system: str) -> Connector:
        try:
            return self._by_system[system]
        except KeyError:
            raise UnknownSystem(f"no connector for the system {system!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_system)

    def __len__(self) -> int:
        return len(self._by_system)

    def describe(self, system: str) -> SystemDescription:
        """The system for pages: its connector, or a stand-in if there is none here."""
        return self._by_system.get(system) or self._files.get(system) or UnavailableSystem(system)

    def connectable_by(self, kind: ConnectKind) -> list[Connector]:
        """The systems connected this way, in registration order (what Ny integrasjon offers)."""
        return [c for c in self._by_system.values() if c.capabilities.connect is kind]

    def file_system(self, system: str) -> FileSystem | None:
        """The system by that name if its data arrives as files."""
        return self._files.get(system)

    def file_systems(self) -> list[FileSystem]:
        return list(self._files.values())

    def planned(self) -> list[tuple[str, str]]:
        """Systems not spoken yet, as (system, name)."""
        return [(system, name) for system, name in PLANNED if system not in self._by_system]
