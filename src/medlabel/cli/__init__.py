"""The ``medlabel`` command line (Typer)."""
