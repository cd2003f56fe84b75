"""An embedded CQL server: the real CQL native protocol (v4) over a small, durable store.

It exists because no ScyllaDB or Cassandra server can run on the machines this project is
developed and tested on; the unmodified ``scylla-driver`` talks to it as it would to ScyllaDB.
"""
