"""Tests of trtc_exporter.polling."""
