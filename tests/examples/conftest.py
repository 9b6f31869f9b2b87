"""The example service's ``workflow`` package imports like the service's own code does: from
its folder on the path."""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster-service"

if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))
