"""Shared by the benchmark scripts: print a result table and optionally keep it in a file."""

from __future__ import annotations

import re
from pathlib import Path


def print_and_save(table: str, output: str | None) -> None:
    """Print ``table``; also write it to ``output`` when given (the README pastes these files)."""
    print(table)
    if output:
        with open(output, "w") as f:
            f.write(table + "\n")


def publish(table: str, output: str | None, readme: Path | None, section: str) -> None:
    """Print ``table``, write it to ``output`` and, given a ``readme``, put it in that README's ``section``."""
    print_and_save(table, output)
    if readme:
        replace_readme_section(readme, section, table)


def replace_readme_section(readme: Path, name: str, body: str) -> None:
    """Put ``body`` between the README's ``<!-- <name>:begin -->`` and ``<!-- <name>:end -->`` lines."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = Path(readme).read_text(encoding="utf-8")
    if text.count(begin) != 1 or text.count(end) != 1:
        raise SystemExit(f"--readme {readme}: needs one {begin} line and one {end} line")
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    Path(readme).write_text(pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text), encoding="utf-8")
