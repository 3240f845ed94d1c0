"""nbval: the deterministic cells in deterministic_cells.ipynb give the outputs stored with them.

Runs ``pytest --nbval`` on that notebook in a subprocess (so ``make test`` includes it without the
``--nbval`` flag for the whole suite); the notebook says how to regenerate it after a deliberate change.
"""

import subprocess
import sys
from pathlib import Path

NOTEBOOK = Path(__file__).with_name("deterministic_cells.ipynb")


def test_deterministic_cells_keep_their_stored_outputs():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(NOTEBOOK), "-q", "-p", "no:cacheprovider"],
        cwd=NOTEBOOK.parents[2], capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"outputs changed (or the notebook failed):\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
