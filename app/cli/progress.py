"""A one-line progress bar on a terminal stream, for the long-running commands."""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """``[#####.....]  42.0%  <counts>  <rate>/s``, redrawn at most ten times a second."""

    width = 30

    def __init__(self, out: TextIO | None, unit: str = "rows") -> None:
        self.out = out
        self.unit = unit
        self.started = time.perf_counter()
        self._drawn = 0.0

    def update(self, fraction: float, done: int, detail: str = "", force: bool = False) -> None:
        if self.out is None:
            return
        now = time.perf_counter()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        fraction = min(max(fraction, 0.0), 1.0)
        bar = "#" * int(self.width * fraction)
        rate = done / max(now - self.started, 1e-9)
        extra = f"  {detail}" if detail else ""
        self.out.write(
            f"\r[{bar.ljust(self.width, '.')}] {fraction:6.1%}  {done:,} {self.unit}{extra}  {rate:,.0f} {self.unit}/s"
        )
        self.out.flush()

    def close(self) -> None:
        if self.out is not None:
            self.out.write("\n")
            self.out.flush()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
