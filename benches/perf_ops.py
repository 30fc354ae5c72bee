#!/usr/bin/env python3
"""Where a burn-flex run spends its time, op by op, from a `perf` recording.

    perf record -F 99 --call-graph dwarf,8192 -o dit.data -- \
        target/release/examples/dit_real_size --device cpu --layers 4 --cached-frames 0
    perf script -i dit.data -F comm,tid,ip,sym,dso | python3 benches/perf_ops.py

Each sample is attributed to the innermost burn-flex op on its stack (the `...Ops<Flex> for
Flex>::op` method, else the innermost `burn_flex::` function); samples of rayon worker threads
whose stack holds no burn-flex frame (gemm's own parallel loops, closures inlined into rayon)
are listed by their leaf symbol. Samples under `--exclude` (default: the random weight
initialisation) are left out. Prints each group's share with its three commonest leaf symbols.
"""
import argparse
import collections
import re
import sys

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--exclude", default=r"ElementRandom|TensorData::random|Uninitialized|float_random",
                    help="regex: samples with a frame matching it are left out")
parser.add_argument("--top", type=int, default=25, help="groups to print")
args = parser.parse_args()
exclude = re.compile(args.exclude)
op_re = re.compile(r"for burn_flex::backend::Flex>::(\w+)")
flex_re = re.compile(r"(burn_flex::[\w:]+?)(::\{\{closure\}\}|$|<)")
frame_re = re.compile(r"\s+[0-9a-f]+\s+(.*?)(\s+\(([^()]*)\))?\s*$")

samples, frames = [], []
for line in sys.stdin:
    if not line.strip():
        if frames:
            samples.append(frames)
        frames = []
    elif line[0] in " \t":
        m = frame_re.match(line)
        if m:
            frames.append(m.group(1))
if frames:
    samples.append(frames)

kept = [f for f in samples if not any(exclude.search(s) for s in f)]
if not kept:
    sys.exit("no samples (is the input `perf script -F comm,tid,ip,sym,dso` output?)")
groups = collections.Counter()
leaves = collections.defaultdict(collections.Counter)
for stack in kept:  # leaf first
    op = next((m.group(1) for s in stack if (m := op_re.search(s))), None)
    if op is None:
        op = next((m.group(1) for s in stack if "burn_flex" in s and (m := flex_re.search(s))), None)
    op = op or "(no burn-flex frame) " + re.sub(r"<.*", "", stack[0])[:70]
    groups[op] += 1
    leaves[op][re.sub(r"<.*", "", stack[0])[:70]] += 1
print(f"{len(samples)} samples, {len(kept)} kept")
for op, c in groups.most_common(args.top):
    top = ", ".join(f"{leaf} {100 * k / c:.0f}%" for leaf, k in leaves[op].most_common(3))
    print(f"{100 * c / len(kept):6.2f}%  {op}  [{top}]")
