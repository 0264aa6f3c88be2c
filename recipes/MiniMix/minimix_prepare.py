#!/usr/bin/env python3
"""MiniMix's data preparation: ``python minimix_prepare.py --out ~/minimix [--preset tiny] [--layout whamr]
[--espeak]``. The code is :mod:`sepmamba_sb.data.minimix` (``python -m sepmamba_sb.data.minimix`` is the
same command); see recipes/MiniMix/README.md.
"""

from sepmamba_sb.data.minimix import main

if __name__ == "__main__":
    main()
