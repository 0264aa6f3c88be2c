"""What a hub folder holds: its files' names and the class that separates with it."""

HPARAMS_FILE = "hyperparams.yaml"  # the modules and a SpeechBrain Pretrainer that loads them
INTERFACE_FILE = "custom_interface.py"  # SpeechBrain's foreign_class imports it (a copy of this package's)
INTERFACE_CLASS = "SepMambaSeparation"  # sepmamba_sb.inference's interface class
CARD_FILE = "README.md"  # the model card
TEST_MIXTURE = "test_mixture.wav"  # the card's example, and what the check separates
