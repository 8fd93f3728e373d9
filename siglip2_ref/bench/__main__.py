"""`python -m siglip2_ref.bench`: the CPU benchmark (benchmark.py)."""

import sys

from .benchmark import main

sys.exit(main())
