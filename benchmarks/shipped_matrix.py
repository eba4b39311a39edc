#!/usr/bin/env python3
"""Run every shipped arch config on every shipped workload, as a user of an installed sasim
would: whole processes, from an empty temporary directory, each with ``--out``.

Prints one line per pair (exit status, seconds, the error line if any) and a count of the
pairs that did not exit 0. The workloads whose functional runs take minutes (the LLMs,
BERT-512, GPT-2 prefill, VGG-16) are left out unless ``--all`` is given; ``--timing-only``
passes that flag to every run. Usage (from anywhere)::

    .venv/bin/python benchmarks/shipped_matrix.py [--sasim PATH] [--jobs 2] [--all]
        [--timing-only] [--arch NAME ...] [--workload NAME ...]

``--sasim`` names the command to run (default: this tree's ``python -m simulator``); give
the ``sasim`` of a wheel installed in a fresh environment to check what the wheel ships.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Workloads left out without --all: functional runs of minutes to hours.
SLOW = ("llama", "bert_base_seq512", "gpt2_prefill", "vgg16", "bert_base_seq128", "vit_b16")


def _names(command: list[str], env: dict[str, str]) -> tuple[list[str], list[str]]:
    """The shipped arch configs and workloads, from ``sasim list``."""
    listed = subprocess.run([*command, "list"], capture_output=True, text=True, env=env,
                            check=True).stdout.splitlines()
    archs, workloads, section = [], [], None
    for line in listed:
        if line.startswith("arch configs"):
            section = archs
        elif line.startswith("workloads"):
            section = workloads
        elif line.startswith(("PE types", "sweep specs")):
            section = None
        elif section is not None and line and not line.startswith(("name", "-")):
            section.append(line.split()[0])
    return archs, workloads


def _run(command: list[str], env: dict[str, str], arch: str, workload: str,
         timing_only: bool) -> tuple[str, str, int, float, str]:
    with tempfile.TemporaryDirectory(prefix="sasim-matrix-") as cwd:
        started = time.perf_counter()
        done = subprocess.run([*command, "run", "--arch", arch, "--workload", workload,
                               "--out", "out", *(["--timing-only"] if timing_only else [])],
                              capture_output=True, text=True, env=env, cwd=cwd)
        seconds = time.perf_counter() - started
    error = done.stderr.strip().splitlines()[-1] if done.returncode else ""
    return arch, workload, done.returncode, seconds, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sasim", help="the sasim command (default: this tree's)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--all", action="store_true", help="include the slow workloads")
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument("--arch", action="append", help="only these arch configs")
    parser.add_argument("--workload", action="append", help="only these workloads")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.sasim:
        command = [args.sasim]
    else:
        command = [sys.executable, "-m", "simulator"]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))
    env.setdefault("MPLBACKEND", "Agg")
    archs, workloads = _names(command, env)
    archs = args.arch or archs
    workloads = args.workload or [w for w in workloads
                                  if args.all or not w.startswith(SLOW)]
    pairs = [(a, w) for a in archs for w in workloads]
    print(f"{len(archs)} arch configs x {len(workloads)} workloads = {len(pairs)} runs, "
          f"{args.jobs} at a time, with {' '.join(command)}", flush=True)
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(_run, command, env, a, w, args.timing_only) for a, w in pairs]
        for future in futures:
            arch, workload, status, seconds, error = future.result()
            failed += status != 0
            print(f"{arch:22s} {workload:22s} exit {status}  {seconds:7.1f} s  {error}",
                  flush=True)
    print(f"{len(pairs) - failed} of {len(pairs)} runs exit 0; {failed} do not")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
