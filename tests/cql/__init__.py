"""Tests of the embedded CQL server: parser, engine, frames, and the driver over a socket."""
