"""Real speech for small corpora: Debian speech packages (:mod:`.speech_sources`) and a builder of
wsj0-2mix-layout corpora from any speaker-labelled recordings (:mod:`.corpus`)."""
