"""`python -m siglip2_ref ...` runs the `siglip2-ref` command line."""

import sys

from .cli.app import main

if __name__ == "__main__":
    sys.exit(main())
