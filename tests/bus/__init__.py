"""The NATS bus against a real nats-server: the hub plug-in, its parts, and nodes together."""
