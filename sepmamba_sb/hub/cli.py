"""The command line of ``python -m sepmamba_sb.hub export | check | push``: write, check and share hub folders."""

from __future__ import annotations

import argparse
import logging
import sys

from sepmamba_sb.hub.check import HubCheckError, check, one_line
from sepmamba_sb.hub.export import export
from sepmamba_sb.hub.push import push


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sepmamba_sb.hub", description="Write, check and share "
                                     "SepMamba hub folders (SpeechBrain's hub layout).")
    commands = parser.add_subparsers(dest="command", required=True)
    ex = commands.add_parser("export", help="write a hub folder from a recipe's output folder")
    ex.add_argument("run", help="a training run's output folder (hyperparams.yaml, save/CKPT+*)")
    ex.add_argument("out", help="the hub folder to write")
    ex.add_argument("--test-mixture", default=None, help="example mixture (default: the run's first test mixture)")
    ex.add_argument("--corpus", default=None, help="training data named in the card (default: the yaml's corpus)")
    ex.add_argument("--recipe", default=None, help="recipe named in the card (default: the yaml's recipe)")
    ex.add_argument("--license", dest="licence", default="apache-2.0", help="the weights' licence (hub identifier)")
    ex.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                    help="store the weights in this CPU inference precision (default fp32)")
    ch = commands.add_parser("check", help="check that a folder is ready to share (exit 1 if not)")
    ch.add_argument("folder")
    ch.add_argument("--no-load", action="store_true", help="skip loading in fresh processes (files and card only)")
    pu = commands.add_parser("push", help="check a folder, then upload it to huggingface.co")
    pu.add_argument("folder")
    pu.add_argument("--repo", required=True, help="USER/NAME of the model repository (created if needed)")
    pu.add_argument("--token", default=None, help="Hugging Face token (default: hf auth login's, or HF_TOKEN)")
    pu.add_argument("--private", action="store_true", help="create the repository private")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "export":
        try:
            out = export(args.run, args.out, test_mixture=args.test_mixture, corpus=args.corpus, recipe=args.recipe,
                         licence=args.licence, precision=args.precision)
        except (FileNotFoundError, TypeError, ValueError) as exc:
            print(f"hub export: {exc}", file=sys.stderr)
            return 2
        print(f"exported {args.run} to {out}; next: python -m sepmamba_sb.hub check {out}")
        return 0
    if args.command == "check":
        result = check(args.folder, load=not args.no_load)
        print(result.report(), file=sys.stdout if result.ok else sys.stderr)
        return 0 if result.ok else 1
    try:
        url = push(args.folder, args.repo, token=args.token, private=args.private)
    except ValueError as exc:
        print(f"hub push: {exc}", file=sys.stderr)
        return 2
    except HubCheckError as exc:
        print(f"{exc}\nhub push: nothing was uploaded", file=sys.stderr)
        return 1
    except Exception as exc:  # network, authentication, permissions: one line, and how to log in
        print(f"hub push: uploading to {args.repo} failed: {one_line(exc)}\n(log in with `hf auth login`, set "
              "HF_TOKEN, or pass --token)", file=sys.stderr)
        return 1
    print(f"pushed {args.folder} to {url}")
    return 0
