"""Allow ``python -m trtc_exporter``."""

from trtc_exporter.cli import main

raise SystemExit(main())
