"""Tests of trtc_exporter.targets."""
