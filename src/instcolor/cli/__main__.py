"""``python -m instcolor.cli`` (as ``torchrun -m instcolor.cli train ...`` needs)."""

from instcolor.cli import main

main()
