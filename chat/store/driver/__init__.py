"""The plumbing under the CQL stores: the driver session, its asyncio bridge and reactor, the
batch writer, prepared statements, and which exceptions mean a dependency is down."""
