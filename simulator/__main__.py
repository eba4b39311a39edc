"""``python -m simulator`` and the ``sasim`` command.

SIGTERM and SIGINT are caught before the command's imports: a signal at start-up ends the
process quietly with status 128 + N (nothing has been written yet); once a command runs,
:func:`simulator.cli.main` turns them into an exception that cleans up on the way out;
once it has returned, they are ignored (the outputs are complete).
"""

from __future__ import annotations

import os
import signal

__all__ = ["entry"]


def _quit_early(signum: int, frame: object) -> None:
    os.write(2, f"sasim: stopped by {signal.Signals(signum).name}\n".encode())
    raise SystemExit(128 + signum)


def entry() -> int:
    """Run the ``sasim`` command line; returns its exit status."""
    import gc
    gc.disable()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _quit_early)
    from simulator.cli import main
    gc.freeze()
    gc.enable()

    status = main()
    # The command has finished and its outputs are in place: a signal from now on (while
    # the interpreter exits) must not turn a complete run into a killed one.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    return status


if __name__ == "__main__":
    raise SystemExit(entry())
