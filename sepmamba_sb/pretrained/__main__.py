"""``python -m sepmamba_sb.pretrained``: list the models that ship with the package."""

from sepmamba_sb.pretrained import available, describe


def main() -> int:
    models = available()
    if not models:
        print("no shipped models in this installation")
        return 1
    for name in models:
        print(describe(name))
    print("use: sepmamba-separate NAME in.wav --out DIR, or SepMambaSeparation.from_hparams(source=NAME)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
