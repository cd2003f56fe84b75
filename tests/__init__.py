"""Tests for timingle-chat."""
