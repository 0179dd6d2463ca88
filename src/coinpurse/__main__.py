"""``python -m coinpurse``: the same as the ``coinpurse`` command."""

from coinpurse.cli import main

main()
