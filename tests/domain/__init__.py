"""Tests of the I/O-free domain rules (``chat/domain``): no server, no database."""
