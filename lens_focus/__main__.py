"""``python -m lens_focus`` (and ``torchrun ... -m lens_focus``): the ``lens-focus`` command line."""
from .commands.cli import main

main()
