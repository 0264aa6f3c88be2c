"""Shared by the benchmark scripts: print a result table and optionally keep it in a file."""

from __future__ import annotations


def print_and_save(table: str, output: str | None) -> None:
    """Print ``table``; also write it to ``output`` when given (the README pastes these files)."""
    print(table)
    if output:
        with open(output, "w") as f:
            f.write(table + "\n")
