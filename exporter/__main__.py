"""``python -m exporter`` runs the voxmon CLI."""

import sys

from exporter.cli import main

sys.exit(main())
