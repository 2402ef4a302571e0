"""Tests of trtc_exporter.api."""
