"""Small wsj0-2mix-layout corpora from any speaker-labelled recordings (:mod:`.corpus`;
``python -m sepmamba_sb.data --speakers-folder DIR --out OUT``)."""
