"""The ScyllaDB (CQL) stores: messages, history, unread counts, reactions, typing, and their
migrations."""
