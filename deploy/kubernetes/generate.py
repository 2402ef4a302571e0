#!/usr/bin/env python3
"""Write base/prometheusrule.yaml: the generated rule groups as a PrometheusRule object.

    python deploy/kubernetes/generate.py          # rewrite the file
    python deploy/kubernetes/generate.py --check  # exit 1 when the file is not current
    python deploy/kubernetes/generate.py --selector 'job="my-job"' --output-dir out/

A thin wrapper of alerts/generate.py (which also writes alerts/*.yml from the same templates and
settings, see alerts/config.yml): alerts/ stays the one place where rules are edited and promtool
tests them there. tests/test_deploy.py fails when this file and alerts/ differ.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(__file__).resolve().parent / "base" / "prometheusrule.yaml"


def _alerts_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("trtc_alerts_generate",
                                                  ROOT / "alerts" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    code: int = _alerts_generator().main(argv, only=(OUTPUT,))
    return code


if __name__ == "__main__":
    sys.exit(main())
