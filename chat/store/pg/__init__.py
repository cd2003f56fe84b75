"""The PostgreSQL stores (users, events, slots, payments, OAuth tokens) and their migrations."""
