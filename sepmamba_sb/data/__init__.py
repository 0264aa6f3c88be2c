"""Training and test data: corpora from any speaker-labelled recordings (:mod:`.corpus`, ``python -m
sepmamba_sb.data --speakers-folder DIR --out OUT``) and in WHAM!'s, WHAMR!'s and LibriMix's layouts
(:mod:`.wham`), the MiniMix corpus of Debian speech (:mod:`.minimix`, :mod:`.debian`), a recipe's CSVs
(:mod:`.wsjmix`) and its dynamic mixing (:mod:`.mixing`)."""
