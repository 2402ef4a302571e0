"""``python -m trtc_exporter.simulator`` runs the same command as ``... simulate``."""

from trtc_exporter.simulator.cli import main

raise SystemExit(main())
