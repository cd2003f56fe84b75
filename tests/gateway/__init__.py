"""Unit tests of the I/O-free gateway core: frames and the session state machine."""
