"""``python -m simulator`` and the ``sasim`` command.

SIGTERM and SIGINT are caught before the command's imports: a signal at start-up ends the
process at once, quietly, with status 128 + N (nothing has been written yet); once a command runs,
:func:`simulator.cli.main` turns them into an exception that cleans up on the way out;
once it begins putting its outputs in place, or has returned, they are ignored (the
outputs are complete: :func:`simulator.outputs.outputs_final`).

Two settings for the whole process, as the command owns it (docs/performance.md,
"Start-up"): glibc's allocator keeps freed memory for reuse, and the objects the imports
create are frozen out of the garbage collector.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["entry"]


def _quit_early(signum: int, frame: object) -> None:
    """A stop signal outside a command's run (start-up, or after the command): end now.

    Nothing of the command's is written yet, or its own clean-up has run, so the process
    ends at once (``os._exit``) instead of raising into whatever the signal interrupted:
    an exception raised inside an import (numpy's, say) can turn into another error with a
    traceback, or leave a half-initialised module for the interpreter's exit to trip on.
    """
    outputs = sys.modules.get("simulator.outputs")  # may be half imported
    final = getattr(outputs, "outputs_final", None)
    if final is not None and final():  # the command's outputs are in place
        return
    os.write(2, f"sasim: stopped by {signal.Signals(signum).name}\n".encode())
    os._exit(128 + signum)


#: glibc's mallopt parameters (malloc.h) and what the command sets them to: freed memory
#: up to 256 MB stays in the process for the next allocation (docs/performance.md, "Start-up")
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_KEEP_FREED = ((_M_TRIM_THRESHOLD, 256 << 20), (_M_MMAP_THRESHOLD, 256 << 20),
               (_M_TOP_PAD, 16 << 20))


def _keep_freed_memory() -> None:
    """Ask glibc's allocator to keep freed memory (up to 256 MB) for reuse.

    A run allocates and frees each layer's arrays; by default glibc returns every large
    block to the operating system when it is freed, and the next layer's arrays are then
    new pages, which the kernel zeroes on first touch: about 15,000 page faults and 0.1 s
    of CPU in a SySMT-4T ResNet-18 run. Kept, they are reused. Not done where the allocator
    is not glibc's, nor when the user set any ``MALLOC_*`` variable.
    """
    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    for parameter, value in _KEEP_FREED:
        mallopt(parameter, value)


def entry() -> int:
    """Run the ``sasim`` command line; returns its exit status."""
    import gc

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _quit_early)
    _keep_freed_memory()
    # The imports' objects live as long as the process: collected, they are traversed
    # again and again for nothing (about 15 ms of a run); frozen, the collector skips them.
    gc.disable()
    try:
        from simulator.cli import main

        gc.freeze()
    finally:
        gc.enable()
    status = main()
    # The command has finished and its outputs are in place: a signal from now on (while
    # the interpreter exits) must not turn a complete run into a killed one.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    return status


if __name__ == "__main__":
    raise SystemExit(entry())
