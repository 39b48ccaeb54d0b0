"""The simulator's wall clock: pinnable, movable forward, and never handing out a change
timestamp twice or backwards (polling by `...GreaterThan` filters relies on that)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# Go is a Norwegian service: its DateTimeOffsets carry Oslo's offset (+01:00 or +02:00), so
# clients must compare instants, never strings or naive times.
OSLO = ZoneInfo("Europe/Oslo")


@dataclass
class Clock:
    fixed: datetime | None = None  # None follows the real time
    offset: timedelta = field(default_factory=timedelta)
    last_stamp: datetime | None = None

    def now(self) -> datetime:
        base = self.fixed if self.fixed is not None else datetime.now(OSLO)
        return (base + self.offset).astimezone(OSLO)

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += timedelta(seconds=seconds)
        return self.now()

    def stamp(self) -> datetime:
        """Now, or a microsecond after the previous stamp if that is not earlier."""
        moment = self.now()
        if self.last_stamp is not None and moment <= self.last_stamp:
            moment = self.last_stamp + timedelta(microseconds=1)
        self.last_stamp = moment
        return moment

    def saw(self, moment: datetime) -> None:
        """A seeded timestamp: later stamps come after it."""
        if self.last_stamp is None or moment > self.last_stamp:
            self.last_stamp = moment
