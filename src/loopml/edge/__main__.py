"""``python -m loopml.edge BUNDLE --data JSON``: predict with an edge bundle, print JSON."""

from __future__ import annotations

import sys

from loopml.edge._runtime import main

if __name__ == "__main__":
    sys.exit(main())
