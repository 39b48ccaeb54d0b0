"""Query parameters as Go's ASP.NET binding reads them: names case-insensitive, account
number lists with ranges, dates, DateTimeOffsets, and the ResourceParameters paging."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from simulators.poweroffice.errors import bad_request

DEFAULT_PAGE_SIZE = 5000  # ResourceParameters.PageSize's documented default
MAX_PAGE_SIZE = 20000  # ResourceParameters.MaxPageSize
_RANGE = re.compile(r"^(\d*)\s*-\s*(\d*)$")


class Query:
    def __init__(self, params: Mapping[str, str]) -> None:
        self._values: dict[str, str] = {}
        for name, value in params.items():
            self._values.setdefault(name.lower(), value)

    def text(self, name: str) -> str | None:
        value = self._values.get(name.lower())
        return value if value is not None and value.strip() else None

    def day(self, name: str, *, required: bool = False) -> date | None:
        raw = self.text(name)
        if raw is None:
            if required:
                raise bad_request(f"The {name} field is required.")
            return None
        try:
            # "Note that (date time) offsets (if provided) is not taken into account."
            return date.fromisoformat(raw.strip()[:10])
        except ValueError:
            raise bad_request(f"The value '{raw}' is not valid for {name}.") from None

    def moment(self, name: str) -> datetime | None:
        raw = self.text(name)
        if raw is None:
            return None
        # An unencoded "+" in an offset arrives as a space.
        text = raw.strip().replace(" ", "+").replace("Z", "+00:00").replace("z", "+00:00")
        if "T" not in text and "t" not in text and len(text) > 10:
            text = text[:10] + "T" + text[11:]
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise bad_request(f"The value '{raw}' is not valid for {name}.") from None
        # Without an offset the value is taken as UTC; clients should always send one.
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def flag(self, name: str) -> bool:
        raw = self.text(name)
        if raw is None:
            return False
        if raw.lower() not in ("true", "false"):
            raise bad_request(f"The value '{raw}' is not valid for {name}.")
        return raw.lower() == "true"

    def account_filter(self, name: str = "accountNos") -> Callable[[int], bool]:
        """E.g. "1000-1999, 2500, 3000-": inclusive ranges, single numbers, open ends."""
        raw = self.text(name)
        if raw is None:
            return lambda _: True
        ranges: list[tuple[int, int]] = []
        for part in raw.split(","):
            part = part.strip()
            if not part:
                continue
            if part.isdigit():
                ranges.append((int(part), int(part)))
                continue
            found = _RANGE.match(part)
            if found is None or not (found.group(1) or found.group(2)):
                raise bad_request(f"The value '{raw}' is not valid for {name}.")
            low = int(found.group(1)) if found.group(1) else 0
            high = int(found.group(2)) if found.group(2) else 10**18
            ranges.append((low, high))
        return lambda number: any(low <= number <= high for low, high in ranges)

    def page(self) -> Page:
        number = self._integer("PageNumber", 1)
        size = self._integer("PageSize", DEFAULT_PAGE_SIZE)
        if number < 1:
            raise bad_request("PageNumber must be 1 or more.")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise bad_request(f"PageSize must be between 1 and MaxPageSize ({MAX_PAGE_SIZE}).")
        return Page(number, size)

    def _integer(self, name: str, default: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise bad_request(f"The value '{raw}' is not valid for {name}.") from None


@dataclass(frozen=True)
class Page:
    number: int
    size: int

    def cut(self, rows: list[Any]) -> list[Any]:
        start = (self.number - 1) * self.size
        return rows[start : start + self.size]
