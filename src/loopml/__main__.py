"""``python -m loopml`` runs the command line."""

from loopml._entry import main

main()
