#!/usr/bin/env bash
# The GPU measurements in one call, for an NVIDIA machine without npm or Node: kernels (sort,
# scan, cuts, pair steps, balance; kernel-only times from timestamp queries), the planner GPU vs
# CPU side by side (rounds and best, 65k to 10M items, with where the time went), and cold CLI
# calls with a check that both backends print the same phases. Prepare here (docs/GPU.md):
#   node bench/bundle-gpu.mjs                       # .gpu/*.mjs, .gpu/node_modules/webgpu
#   a 65,536-example batch and its config as .gpu/big.jsonl and .gpu/big.json (optional: the CLI part)
# then run it there with carry [".gpu", ".gl"]:   bash bench/device.sh [bandwidth GB/s]
# Results go to $OUT (gpu.txt, kernels.md, plan.md, plan-10m.md, cli.txt) and stdout. Each part
# has its own time limit (together under 10 minutes), so one slow part cannot take the others'
# figures with it.
set -uo pipefail
BW="${1:-4800}"   # 4800 for an H200, 3350 for an H100
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
cd .gpu
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
# 1. Kernels, each against its CPU reference (equal = yes), with kernel-only times.
timeout 110 /tmp/node kernels.mjs --sizes 1000,100000,1000000 --reps 5 --bandwidth-gbs "$BW" 2>&1 | tee "$OUT/kernels.md"
# 2. The planner, CPU and GPU interleaved repeat by repeat: 65k, 1M items (the targets' sizes).
timeout 140 /tmp/node bench.mjs --grid 65536x1024,262144x4096 --algorithms rounds,best --backends cpu,gpu --repeats 5 --stages 2>&1 | tee "$OUT/plan.md"
# 3. 10M items over 16,384 ranks (2,500,000 examples; the workload's vision cap is sized for
#    fewer examples a rank, hence --uncapped).
timeout 170 /tmp/node --max-old-space-size=32768 bench.mjs --grid 2500000x16384 --uncapped --algorithms rounds,best --backends cpu,gpu --repeats 3 --stages 2>&1 | tee "$OUT/plan-10m.md"
# 4. Cold CLI calls, GPU vs CPU, and the same phases from both.
if [ -f big.jsonl ] && [ -f big.json ]; then
  for backend in cpu gpu cpu gpu; do
    s=$(date +%s%N)
    timeout 35 /tmp/node postbalance.mjs plan --batch big.jsonl --config big.json --backend "$backend" > "plan-$backend.json"
    e=$(date +%s%N)
    /tmp/node -e 'const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`cold CLI --backend ${process.argv[2]}: wall ${(process.argv[3] / 1e9).toFixed(2)} s, planMs ${p.stats.planMs}, adapter ${p.stats.adapter}`)' \
      "plan-$backend.json" "$backend" "$((e - s))" | tee -a "$OUT/cli.txt"
  done
  /tmp/node -e 'const f = (n) => JSON.stringify(JSON.parse(require("fs").readFileSync(n, "utf8")).phases); console.log(f("plan-cpu.json") === f("plan-gpu.json") ? "CLI phases identical, cpu vs gpu" : "CLI PHASES DIFFER")' | tee -a "$OUT/cli.txt"
fi
