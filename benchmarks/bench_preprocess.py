"""Preprocessing throughput (images/s): siglip2_ref next to transformers' processors, on the same image files.

    python benchmarks/bench_preprocess.py [--quick] [--repeats 5]

The measurement lives in the package benchmark (siglip2_ref/bench/preprocess.py); this is
`python -m siglip2_ref.bench --preprocess-only`, kept here for the command docs/preprocessing.md gave before.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from siglip2_ref.bench.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--preprocess-only", *sys.argv[1:]]))
