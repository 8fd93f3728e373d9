"""The `siglip2-ref` command line: the parser and error boundary (app.py), shared options, one module per command."""

from .app import main

__all__ = ["main"]
