"""The driver's asyncio reactor, run on the application's own (running) event loop.

Why: with the libev reactor the driver's I/O thread and the event-loop thread hand the GIL to
each other on every request and answer, and each hand-off can wait out the interpreter's 5 ms
switch interval (strace of ``bench/store_write.py``: the I/O thread's futex waits time out at
exactly 5 ms; both threads ~half idle). Here the sockets are read and written by tasks on the
application loop itself, so the hot path has one thread and no hand-off.

Rules this relies on (the driver keeps them; ``chat.store.driver.session`` keeps the rest):

* nothing blocks the loop thread on the driver: ``Cluster.connect``, ``Session.prepare`` and
  ``Cluster.shutdown`` run in worker threads (``asyncio.to_thread``), where they may wait on
  coroutines this class schedules onto the loop with ``run_coroutine_threadsafe``;
* connections are created only by those worker threads or the driver's executor (pools,
  reconnection), never on the loop;
* every connect binds a fresh subclass to its loop (:func:`app_loop_connection_class`), so
  clusters on different loops (tests) never share one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from cassandra.io.asyncioreactor import AsyncioConnection, _AsyncioProtocol


class AppLoopTimer:
    """A driver timer (request timeouts, speculative executions) as a ``call_later`` handle.

    Why: the stock ``AsyncioTimer`` costs a coroutine, a task and a thread-safe hand-off per
    request; requests are now sent from the loop thread, where ``call_later`` is enough.
    """

    __slots__ = ("_cancelled", "_handle", "_loop")

    def __init__(
        self, timeout: float, callback: Callable[[], Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._cancelled = False
        if _on_loop(loop):
            self._handle = loop.call_later(timeout, callback)
        else:
            loop.call_soon_threadsafe(self._arm, timeout, callback)

    def _arm(self, timeout: float, callback: Callable[[], Any]) -> None:
        if not self._cancelled:
            self._handle = self._loop.call_later(timeout, callback)

    def cancel(self) -> None:
        self._cancelled = True
        if _on_loop(self._loop):
            if self._handle is not None:
                self._handle.cancel()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._cancel_on_loop)

    def _cancel_on_loop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class AppLoopConnection(AsyncioConnection):  # type: ignore[misc]  # the driver is untyped
    """``AsyncioConnection`` whose loop is the application's running loop, not a private one.

    Use :func:`app_loop_connection_class` to get a subclass bound to a loop; this class itself
    has no loop and refuses to connect.
    """

    _loop: ClassVar[asyncio.AbstractEventLoop | None] = None
    _loop_thread: ClassVar[threading.Thread | None] = None

    @classmethod
    def initialize_reactor(cls) -> None:
        """No private loop or thread: the loop was bound before ``Cluster`` was built."""
        if cls._loop is None:
            raise RuntimeError("bind the connection class with app_loop_connection_class(loop)")

    @classmethod
    def handle_fork(cls) -> None:
        """A forked child has no running copy of the parent's loop; nothing to restart."""

    @classmethod
    def create_timer(cls, timeout: float, callback: Callable[[], Any]) -> AppLoopTimer:
        assert cls._loop is not None
        return AppLoopTimer(timeout, callback, cls._loop)

    async def handle_read(self) -> None:
        """Hand the connected socket to a loop transport; its protocol reads from then on.

        Why a transport and not the stock ``sock_recv`` loop: each ``sock_recv`` costs a future
        and a task wake-up per read, while a (uvloop, C) transport calls ``data_received``
        directly. The same protocol class the driver uses for TLS feeds ``process_io_buffer``
        and turns a lost connection into ``defunct``/``close``.
        """
        loop = self._loop
        assert loop is not None
        protocol = _AsyncioProtocol(self)
        try:
            transport, _ = await loop.create_connection(lambda: protocol, sock=self._socket)
        except OSError as exc:
            self.defunct(exc)
        else:
            self._protocol = protocol
            self._transport = transport
        finally:
            self._transport_ready.set()

    async def _setup_ssl_and_run(self) -> None:
        """TLS: the driver's handshake over a loop transport (it runs instead of
        :meth:`handle_read`); then what was queued meanwhile goes out, as after a plain connect.
        """
        try:
            await super()._setup_ssl_and_run()
        finally:
            self._transport_ready.set()

    async def handle_write(self) -> None:
        """Write what was queued before the transport existed (or off the loop), in order."""
        ready = self._transport_ready
        await ready.wait()
        while True:
            try:
                chunk = await self._write_queue.get()
            except asyncio.CancelledError:
                return
            transport = self._transport
            if self.is_closed or self.is_defunct or transport is None:
                return
            transport.write(chunk)

    @property
    def _transport_ready(self) -> asyncio.Event:
        event: asyncio.Event | None = self.__dict__.get("_ready_event")
        if event is None:
            event = self.__dict__["_ready_event"] = asyncio.Event()
        return event

    def push(self, data: bytes) -> None:
        """Write ``data`` to the transport at once when on the loop, else queue it.

        Why: the stock ``push`` schedules a coroutine (and a thread-safe hand-off) per request
        and a writer task sends it later. On the loop, with the transport up and nothing queued
        ahead, the transport's ``write`` sends it now (buffering what the socket does not
        take); otherwise the writer task keeps the order.
        """
        loop = self._loop
        assert loop is not None
        if not _on_loop(loop):
            super().push(data)
            return
        transport = self._transport
        queue = self._write_queue
        if transport is not None and queue.empty():
            transport.write(data)
        else:
            queue.put_nowait(data)

    def close(self) -> None:
        """Close on the loop, and tolerate a loop that is already closed (nothing left to run)."""
        with self.lock:
            if self.is_closed:
                return
            self.is_closed: bool = True
        loop = self._loop
        assert loop is not None
        if _on_loop(loop):
            task = loop.create_task(self._close())
            self._background_tasks.add(task)
            task.add_done_callback(self._background_tasks.discard)
        elif not loop.is_closed():  # a closed loop has nothing left to run
            asyncio.run_coroutine_threadsafe(self._close(), loop=loop)
        elif self._socket is not None:
            self._socket.close()


def app_loop_connection_class(loop: asyncio.AbstractEventLoop) -> type[AppLoopConnection]:
    """A connection class bound to ``loop``, which must be running (call this from it).

    Why a subclass per call: the driver keeps the loop on the class, and one process may hold
    clusters on different loops (the test suite does); each gets its own class.
    """
    if not loop.is_running():
        raise RuntimeError("the application loop must be running")
    return type(
        "BoundAppLoopConnection",
        (AppLoopConnection,),
        {"_loop": loop, "_loop_thread": None, "_lock": threading.Lock()},
    )
