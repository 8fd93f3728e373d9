"""Tools for porters: every stage by name, tolerance tiers, dumps, first-divergence comparison, golden bundles,
other libraries' conventions and float16/bfloat16 emulation (docs/porting.md).

    stages.py       every intermediate of a forward, by name         tolerances.py  the named tiers
    verify.py       this implementation against the goldens          dump.py        one run's stages in a file
    compare.py      two dumps, and the first stage that diverges     bundle.py      standard inputs + stages
    conventions.py  big_vision / open_clip / torchvision rules       emulate.py     low-precision rounding
    random_model.py random weights for measurements                   selfcheck.py   published numbers, consistency,
    published.py    expected values of named checkpoints              environment.py the machine (siglip2-ref selfcheck)
"""

from .bundle import check_bundle, export_goldens, load_bundle
from .compare import compare_dumps, first_divergence, format_table
from .dump import DumpError, make_dump, read_dump, write_dump
from .random_model import random_model

__all__ = ["make_dump", "read_dump", "write_dump", "compare_dumps", "first_divergence", "format_table",
           "export_goldens", "load_bundle", "check_bundle", "random_model", "DumpError"]  # fmt: skip
