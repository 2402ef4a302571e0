"""Prometheus exporter for Tencent Cloud TRTC AI transcription task status."""

__version__ = "0.1.0"
