"""Tests of trtc_exporter.web."""
