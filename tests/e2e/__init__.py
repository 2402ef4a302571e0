"""End-to-end tests: real Prometheus, Alertmanager and promtool against the exporter's demo."""
