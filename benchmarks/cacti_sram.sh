#!/bin/sh
# CACTI 7.0's energy per byte of a 45 nm scratch RAM (one 64-bit read-write port) by capacity,
# ITRS cell type and bank count: the figures docs/memory-model.md ("The shipped chips") cites
# and benchmarks/chip_memory.py prints beside sasim's SRAM law.
#
#   git clone https://github.com/HewlettPackard/cacti && make -C cacti
#   sh benchmarks/cacti_sram.sh path/to/cacti
#
# Each run starts from CACTI's own cache.cfg and changes only the lines below.
set -e
CACTI=${1:?usage: cacti_sram.sh CACTI_DIR}
CFG=$(mktemp)
trap 'rm -f "$CFG" "$CFG.out"' EXIT
echo "KiB banks cell       read pJ/B  write pJ/B"
for kib in 8 16 32 64; do
  for banks in 1 2 4; do
    for cell in itrs-hp itrs-lop itrs-lstp; do
      sed -e "s/^-size (bytes) .*/-size (bytes) $((kib * 1024))/" \
          -e "s/^-block size (bytes) .*/-block size (bytes) 8/" \
          -e "s/^-associativity .*/-associativity 1/" \
          -e "s/^-technology (u) .*/-technology (u) 0.045/" \
          -e "s/^-output\/input bus width .*/-output\/input bus width 64/" \
          -e 's/^-cache type .*/-cache type "ram"/' \
          -e "s/^-UCA bank count .*/-UCA bank count $banks/" \
          -e "s/itrs-hp/$cell/g" "$CACTI/cache.cfg" > "$CFG"
      (cd "$CACTI" && ./cacti -infile "$CFG") \
        | awk -v kib="$kib" -v banks="$banks" -v cell="$cell" '
            /Total dynamic read energy per access/ {r = $NF}
            /Total dynamic write energy per access/ {w = $NF}
            END {printf "%3d %5d %-9s %10.2f %11.2f\n", kib, banks, cell, r * 125, w * 125}'
    done
  done
done
