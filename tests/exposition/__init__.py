"""Tests of trtc_exporter.exposition."""
