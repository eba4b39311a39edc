"""Generated RTL of the output-stationary array and its PEs (docs/rtl.md).

Written with Amaranth HDL (the optional ``rtl`` extra). ``design`` (what to build from an
arch) and ``pe`` (which PE types have RTL) import no Amaranth; the CLI loads the rest only
for ``sasim rtl``:

- ``pe/``: one datapath module per PE type, mirroring ``simulator/hw/pe/``;
- ``array``: the R x C array (skew chains, operand registers, accumulators, drain);
- ``cosim``: a GEMM through the array in Amaranth's simulator;
- ``verify``: the co-simulation checked against sasim (``sasim rtl verify``);
- ``emit`` and ``synth``: Verilog, and Yosys's cells and area (``sasim rtl emit|synth``).
"""
