"""Tests of trtc_exporter.simulator."""
