"""The per-request FR-FCFS DRAM controller of one channel, compiled (docs/memory-model.md,
"The per-request controller, fast").

The same decisions as the Python controller ``simulate_requests`` of
``simulator/memory/dram_requests.py`` (its slow, obviously-correct twin, which the tests
compare it with on random requests, command for command): the ``queue_depth`` oldest
unserved requests are seen, and one decision at a time the command that can go earliest is
issued (a column command to an open row before an activate or a precharge at the same cycle,
then the oldest request's; closed page: an idle bank's precharge after every request's
command at the same cycle, the lowest bank first); commands never go back in time; at each
refresh point every bank closes once it may, then the rank refreshes for tRFC. Of one bank's
queued row hits in one direction only the oldest is a candidate: the others are ready at the
same cycle and lose to it.

Arrays and integers in, arrays out: the device timings come as one ``int64`` vector indexed
by the ``P_*`` constants below, the requests as their burst addresses (the bank group, bank
and row are computed on admission) and directions. The loops are compiled in
:mod:`simulator.kernels.dram_controller_loops` (by numba on first use, or ahead of time:
:mod:`simulator.kernels.compiled`); this module checks the arguments and calls them.
"""

from __future__ import annotations

import numpy as np

from simulator.kernels.compiled import kernels

__all__ = ["P_GROUPS", "P_PER_GROUP", "P_COLUMNS", "P_ROW_BANK_COL", "P_CLOSED", "P_DEPTH",
           "P_BURST", "P_TCL", "P_TCWL", "P_TRCD", "P_TRP", "P_TRAS", "P_TRC", "P_TCCD_S",
           "P_TCCD_L", "P_TRRD_S", "P_TRRD_L", "P_TFAW", "P_TWR", "P_TWTR", "P_TRTP",
           "P_TREFI", "P_TRFC", "PARAMS", "C_END", "C_ACTIVATES", "C_PRECHARGES",
           "C_REFRESHES", "C_MISSES", "C_LAST_COLUMN", "COUNTS", "serve", "serve_sequential"]

# the timing vector's entries
(P_GROUPS, P_PER_GROUP, P_COLUMNS, P_ROW_BANK_COL, P_CLOSED, P_DEPTH, P_BURST, P_TCL, P_TCWL,
 P_TRCD, P_TRP, P_TRAS, P_TRC, P_TCCD_S, P_TCCD_L, P_TRRD_S, P_TRRD_L, P_TFAW, P_TWR, P_TWTR,
 P_TRTP, P_TREFI, P_TRFC) = range(23)
PARAMS = 23
# the counts vector's entries
C_END, C_ACTIVATES, C_PRECHARGES, C_REFRESHES, C_MISSES, C_LAST_COLUMN = range(6)
COUNTS = 6

_PAST = -(1 << 60)      # before everything (no constraint yet)
_CLOSED_ROW = -2        # a precharged bank
_FOREIGN_ROW = -1       # a bank holding another transfer's row
_LOOPS = "simulator.kernels.dram_controller_loops"


#: The function a :func:`serve_sequential` call goes to, by kernel namespace and whether the
#: timing vector is writable (its other arguments' types never change): a stream that meets
#: a refresh calls it once, a long run hundreds of thousands of times.
_RESOLVED: dict[tuple[object, bool], object] = {}


def _sequential(params: np.ndarray, counts: np.ndarray):
    namespace = kernels(_LOOPS)
    key = (namespace, bool(params.flags.writeable))
    fn = _RESOLVED.get(key)
    if fn is None:
        kernel = namespace._serve_sequential
        fn = _RESOLVED[key] = (kernel.resolve(params, 0, 0, False, 0, False, False, 0, counts)
                               if hasattr(kernel, "resolve") else kernel)
    return fn


def serve_sequential(params: np.ndarray, offset: int, count: int, write: bool, start: int,
                     foreign: bool, next_refresh: int | None) -> np.ndarray:
    """:func:`serve` on ``count`` consecutive burst addresses from ``offset``, all reads or
    all writes; only the ``C_*`` counts (one call into compiled code, no arrays passed)."""
    if params.shape != (PARAMS,) or params.dtype != np.int64:
        raise ValueError(f"params must be int64 of shape ({PARAMS},), not {params.dtype} "
                         f"{params.shape}")
    if offset < 0 or count < 0:
        raise ValueError(f"offset and count must be non-negative, not {offset}, {count}")
    counts = np.zeros(COUNTS, np.int64)
    _sequential(params, counts)(params, int(offset), int(count), bool(write), int(start),
                                bool(foreign), next_refresh is not None,
                                0 if next_refresh is None else int(next_refresh), counts)
    if count == 0:
        counts[C_END] = start
    return counts


def serve(params: np.ndarray, addresses: np.ndarray, writes: np.ndarray, start: int,
          foreign: bool, next_refresh: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Serve one channel's requests with the compiled controller.

    Parameters
    ----------
    params : int64 vector of ``PARAMS`` entries (the ``P_*`` constants).
    addresses : int64 burst addresses within the channel, oldest first (non-negative).
    writes : bool per request: a write (else a read).
    start : DRAM cycle the requests arrive at.
    foreign : every bank starts holding a row no request uses (else precharged).
    next_refresh : the first refresh point (then every tREFI); None: no refresh.

    Returns
    -------
    column, done, counts : per request its column command's cycle and the end of its data;
        the ``C_*`` counts (``C_END``: the last data's end, ``start`` for no request).
    """
    if params.shape != (PARAMS,) or params.dtype != np.int64:
        raise ValueError(f"params must be int64 of shape ({PARAMS},), not {params.dtype} "
                         f"{params.shape}")
    if addresses.dtype != np.int64 or writes.dtype != np.bool_ or (
            addresses.shape != writes.shape):
        raise ValueError("addresses must be int64 and writes bool, of one length")
    n = addresses.shape[0]
    column = np.zeros(n, np.int64)
    done = np.zeros(n, np.int64)
    counts = np.zeros(COUNTS, np.int64)
    kernels(_LOOPS)._serve(params, addresses, writes, int(start), bool(foreign), next_refresh is not None,
           0 if next_refresh is None else int(next_refresh), column, done, counts)
    if n == 0:
        counts[C_END] = start
    return column, done, counts
