#!/usr/bin/env bash
# The GPU measurements in one call, for an NVIDIA machine without npm or Node: kernels
# (sort, scan, cuts, pair steps; kernel-only times from timestamp queries), the planner table
# GPU vs CPU, and cold CLI calls. Prepare here (see ../shared/DESIGN.md for .gl and .gpu/node.xz):
#   node bench/bundle-gpu.mjs                       # .gpu/*.mjs, .gpu/node_modules/webgpu
#   cp /tmp/big.jsonl /tmp/big.json .gpu/            # a 65,536-example batch and its config
# then run it there with carry [".gpu", ".gl"]:   bash bench/device.sh [bandwidth GB/s]
# Results go to $OUT (kernels.md, plan.md, cli.txt) and stdout.
set -uo pipefail
BW="${1:-4800}"   # 4800 for an H200, 3350 for an H100
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
cd .gpu
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
# Kernels first (sort + scan against the bandwidth floor, and the pair-step threshold: 100k … 1M entries).
timeout 240 /tmp/node kernels.mjs --sizes 1000,100000,262144,1000000,10000000 --reps 5 --bandwidth-gbs "$BW" 2>&1 | tee "$OUT/kernels.md"
timeout 240 /tmp/node bench.mjs --grid 4096x64,65536x1024,262144x4096,262144x16384 --algorithms padded,best --backends cpu,gpu --repeats 3 2>&1 | tee "$OUT/plan.md"
if [ -f big.jsonl ] && [ -f big.json ]; then
  for backend in cpu gpu cpu gpu; do
    s=$(date +%s%N)
    /tmp/node postbalance.mjs plan --batch big.jsonl --config big.json --backend "$backend" > "plan-$backend.json"
    e=$(date +%s%N)
    /tmp/node -e 'const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`cold CLI --backend ${process.argv[2]}: wall ${(process.argv[3] / 1e9).toFixed(2)} s, planMs ${p.stats.planMs}, adapter ${p.stats.adapter}`)' \
      "plan-$backend.json" "$backend" "$((e - s))" | tee -a "$OUT/cli.txt"
  done
  /tmp/node -e 'const f = (n) => JSON.stringify(JSON.parse(require("fs").readFileSync(n, "utf8")).phases); console.log(f("plan-cpu.json") === f("plan-gpu.json") ? "CLI phases identical, cpu vs gpu" : "CLI PHASES DIFFER")' | tee -a "$OUT/cli.txt"
fi
