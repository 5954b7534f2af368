"""Reading a loaded YAML mapping with key paths: typed getters that record every problem.

Pure: the caller collects the ConfigIssues and raises once, naming each offending key.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from compute.plant import ConfigIssue

E = TypeVar("E", bound=enum.Enum)


class Reader:
    """A mapping read at `path`; problems go to `issues`, and a bad value reads as None."""

    def __init__(self, data: object, path: str, issues: list[ConfigIssue]) -> None:
        self.path, self.issues, self.used = path, issues, set[str]()
        self.data: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        if not isinstance(data, Mapping):
            self.bad("", "must be a mapping")

    def bad(self, key: str, message: str) -> None:
        at = f"{self.path}.{key}" if key and self.path else key or self.path
        self.issues.append(ConfigIssue(path=at, message=message))

    def raw(self, key: str, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                self.bad(key, "is required")
            return None
        return self.data[key]

    def number(self, key: str, *, required: bool = False) -> float | None:
        v = self.raw(key, required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.bad(key, f"must be a finite number, not {v!r}")
            return None
        return float(v)

    def integer(self, key: str) -> int | None:
        v = self.raw(key, False)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            self.bad(key, f"must be a whole number, not {v!r}")
            return None
        return v

    def text(self, key: str, *, required: bool = False) -> str | None:
        v = self.raw(key, required)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            self.bad(key, f"must be a non-empty string, not {v!r}")
            return None
        return v

    def flag(self, key: str) -> bool | None:
        v = self.raw(key, False)
        if v is not None and not isinstance(v, bool):
            self.bad(key, f"must be true or false, not {v!r}")
            return None
        return v

    def choice(self, key: str, kind: type[E], *, required: bool = False) -> E | None:
        v = self.raw(key, required)
        if v is None:
            return None
        names = {str(m.name).lower(): m for m in kind}
        if not isinstance(v, str) or v.lower() not in names:
            self.bad(key, f"must be one of {', '.join(names)}, not {v!r}")
            return None
        return names[v.lower()]

    def done(self) -> None:
        for key in self.data:
            if key not in self.used:
                self.bad(str(key), "unknown key")


def time_of_day(o: Reader, key: str) -> int:
    v = o.raw(key, True)
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1440:
        return v  # YAML 1.1 reads an unquoted 22:00 as 1320, minutes since midnight
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", v) if isinstance(v, str) else None
    if m is None or int(m[1]) > 23 or int(m[2]) > 59:
        if v is not None:
            o.bad(key, f'must be a local time of day "HH:MM", not {v!r}')
        return 0
    return int(m[1]) * 60 + int(m[2])
