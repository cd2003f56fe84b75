"""The gateway's tests.

``test_live_*`` run the app on a real server and speak WebSocket to it; the others test one
module without sockets — frames, the session, the hub and its peers, the order merge, the TTL
cache, background tasks — or, for the send order and resume, against the real message store.
"""
