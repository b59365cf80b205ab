"""spark-submit jobs/build_index.py [--out PATH] [--embedder hashing|MODEL]

Builds the FAISS index of dictionary entries on the driver (the entries number in the thousands: no need to
distribute) and writes it where the deid job's config points; the job broadcasts those bytes once.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deid.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["build-index", *sys.argv[1:]]))
