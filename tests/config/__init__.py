"""Tests of trtc_exporter.config."""
