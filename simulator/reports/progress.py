"""A progress display for long runs: a bar redrawn in place on a terminal, quiet periodic lines
in logs (CI, files)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressBar", "format_duration"]


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``'1:15'``; ``3725`` -> ``'1:02:05'``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """Shows ``done / total``, the rate, the ETA and failures on ``stream``.

    On a terminal the line is redrawn at most every ``redraw_s`` seconds; otherwise one line
    is printed every ``interval_s`` seconds, and one when the run ends.

    Parameters
    ----------
    total : number of items this run will do.
    stream : where to write (``sys.stderr`` in the CLI).
    unit : what is counted, e.g. ``"points"``.
    tty : force the terminal or the log behaviour (default: ``stream.isatty()``).
    clock : the time source (seconds), replaceable in tests.
    """

    def __init__(self, total: int, stream: TextIO, *, unit: str = "points",
                 label: str = "", tty: bool | None = None, interval_s: float = 10.0,
                 redraw_s: float = 0.1, width: int = 28,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.stream = stream
        self.unit = unit
        self.label = label
        self.tty = stream.isatty() if tty is None else tty
        self.interval_s = interval_s if not self.tty else redraw_s
        self.width = width
        self.clock = clock
        self.start = clock()
        self._last_shown = -float("inf")
        self._done = 0
        self._failed = 0

    def update(self, done: int, failed: int = 0) -> None:
        """Record progress; draws when the interval has passed (or at the end)."""
        self._done, self._failed = done, failed
        now = self.clock()
        if done >= self.total or now - self._last_shown >= self.interval_s:
            self._last_shown = now
            self._show(now)

    def close(self) -> None:
        """Finish the display (a newline after the terminal bar)."""
        if self.tty:
            self._show(self.clock())
            self.stream.write("\n")
            self.stream.flush()

    def text(self, now: float | None = None) -> str:
        """The progress line as it would be shown now (without the bar on a log)."""
        now = self.clock() if now is None else now
        elapsed = now - self.start
        done, total = self._done, self.total
        rate = done / elapsed if elapsed > 0 else 0.0
        percent = 100.0 * done / total if total else 100.0
        if done >= total:
            eta = f"done in {format_duration(elapsed)}"
        elif rate > 0:
            eta = f"ETA {format_duration((total - done) / rate)}"
        else:
            eta = "ETA --:--"
        parts = [f"{done}/{total} {self.unit} ({percent:.0f}%)",
                 f"{60 * rate:.0f} {self.unit}/min", eta]
        if self._failed:
            parts.append(f"{self._failed} failed")
        prefix = f"{self.label}: " if self.label else ""
        if self.tty:
            filled = int(self.width * done / total) if total else self.width
            bar = "#" * filled + "-" * (self.width - filled)
            return f"{prefix}[{bar}] " + "  ".join(parts)
        return prefix + ", ".join(parts)

    def _show(self, now: float) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + self.text(now))
        else:
            self.stream.write(self.text(now) + "\n")
        self.stream.flush()
