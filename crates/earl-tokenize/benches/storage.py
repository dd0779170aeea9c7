"""Bytes per sample of the upstream pre-tokenized format: one pickle file per sample holding
the two code grids as int64 numpy arrays and the instruction (as EARL's data preparation does).

Usage: .venv/bin/python crates/earl-tokenize/benches/storage.py [grid side, default 32]
Compare with `cargo run -p earl-tokenize --example storage` (tokens.v1 shard bytes per row).
"""

import pickle
import sys

import numpy as np

side = int(sys.argv[1]) if len(sys.argv) > 1 else 32
rng = np.random.default_rng(0)
sample = {
    "name": "omniedit/000000",
    "texts": "Turn the sky into a sunset with warm orange light.",
    "images": rng.integers(0, 32768, size=(side, side), dtype=np.int64),
    "target": rng.integers(0, 32768, size=(side, side), dtype=np.int64),
}
size = len(pickle.dumps(sample))
# Files live one per sample: a filesystem block is the least each one really takes.
block = 4096
on_disk = -(-size // block) * block
print(f"upstream pickle, two {side}x{side} int64 grids: {size} bytes/sample ({on_disk} on a 4 KiB-block disk)")
