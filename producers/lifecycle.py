"""Process-wide hooks for every live emitter: fork, interpreter exit and SIGTERM.

- ``os.register_at_fork``: before a fork every emitter's lock is taken, so no
  buffer is forked half-appended; the child gets a new writer id, empty
  buffers and (lazily) a new thread and transport, so the parent's buffered
  points are never sent twice.
- Exit: registered with ``threading._register_atexit`` where it exists (it
  runs before non-daemon threads are joined, at normal interpreter exit *and*
  at the end of a ``multiprocessing`` child, where ``atexit`` does not run);
  ``atexit`` otherwise. Exit callbacks run first (``Run.get_context`` runs
  are completed there), then every emitter delivers and closes.
- SIGTERM: installed once, from the main thread only, chaining to the handler
  that was there before. It flushes, then does what the previous handler
  would have done (by default: terminate by the signal). A SIGTERM that comes
  while the handler is flushing is ignored: the handler is already on its
  way. (A submitted job gets one per thread of a dying submitter:
  ``PR_SET_PDEATHSIG`` fires each time the child is handed to the next
  thread. Re-entered, the flush would wait for locks the interrupted flush
  holds, forever.)
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .emitter import Emitter

__all__ = ["register", "unregister", "keep_alive", "add_exit_callback", "remove_exit_callback", "flush_all"]

_log = logging.getLogger("runstream.lifecycle")

_emitters: weakref.WeakSet[Emitter] = weakref.WeakSet()
_exit_callbacks: list[Callable[[str], None]] = []
_kept: list[Any] = []
_previous_sigterm: Any = None
_sigterm_installed = False


def register(emitter: Emitter, *, install_signal_handlers: bool) -> None:
    """Track a new emitter; install the SIGTERM handler the first time (main thread only)."""
    _emitters.add(emitter)
    if install_signal_handlers:
        _install_sigterm()


def unregister(emitter: Emitter) -> None:
    """Stop tracking a closed emitter."""
    _emitters.discard(emitter)


def keep_alive(obj: Any) -> None:
    """Hold a reference for the life of the process.

    A forked child drops its parent's transport without closing it (closing
    would flush the parent's producer or seal the parent's spool segment);
    keeping it referenced stops its finalizer from doing that either.
    """
    if obj is not None:
        _kept.append(obj)


def add_exit_callback(callback: Callable[[str], None]) -> None:
    """Call ``callback(reason)`` at exit (``"exit"``) or on a terminating SIGTERM (``"sigterm"``), before the flush."""
    _exit_callbacks.append(callback)


def remove_exit_callback(callback: Callable[[str], None]) -> None:
    """Undo :func:`add_exit_callback`."""
    try:
        _exit_callbacks.remove(callback)
    except ValueError:
        pass


def flush_all(timeout: float | None = None) -> bool:
    """Flush every live emitter; True when all delivered."""
    ok = True
    for emitter in list(_emitters):
        ok = emitter.flush(emitter.exit_timeout_s if timeout is None else timeout) and ok
    return ok


def _run_exit_callbacks(reason: str) -> None:
    for callback in list(_exit_callbacks):
        try:
            callback(reason)
        except Exception:
            _log.exception("runstream: exit callback failed")


def _at_exit() -> None:
    _run_exit_callbacks("exit")
    for emitter in list(_emitters):
        try:
            emitter.close(emitter.exit_timeout_s)
        except Exception:
            _log.exception("runstream: closing the emitter at exit failed")


def _install_sigterm() -> None:
    global _previous_sigterm, _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or signals unavailable
        return
    _previous_sigterm = previous
    _sigterm_installed = True


_sigterm_retries = 0
_SIGTERM_MAX_RETRIES = 400  # x 5 ms: give up flushing after about two seconds
_sigterm_handling = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _sigterm_retries, _sigterm_handling
    if _sigterm_handling:
        return  # it interrupted our flush for an earlier SIGTERM, which goes on to end the process (or chain)
    busy = False
    for emitter in list(_emitters):
        for lock in (emitter._lock, emitter.uploads._lock):  # every lock a flush takes on this thread
            if not lock.acquire(blocking=False):
                busy = True
                break
            lock.release()
        if busy:
            break
    if busy and _sigterm_retries < _SIGTERM_MAX_RETRIES:
        # Most likely this very thread was interrupted inside a logging call's
        # critical section: flushing now would wait for the emitter thread, which
        # needs that lock. Have the signal sent again in a moment, once the
        # interrupted call has moved on. (signal.raise_signal would run this
        # handler again at once, inside this one.)
        _sigterm_retries += 1
        timer = threading.Timer(0.005, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()
        return
    previous = _previous_sigterm
    terminating = previous in (signal.SIG_DFL, None)
    _sigterm_handling = True
    try:
        if not busy:
            if terminating:
                _run_exit_callbacks("sigterm")
            flush_all()
        else:
            _log.error("runstream: SIGTERM: could not flush (the buffers stayed busy)")
        if callable(previous):
            previous(signum, frame)
        elif terminating:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
    finally:
        _sigterm_handling = False  # a previous handler that did not end the process: the next SIGTERM counts


_forking: list[Emitter] = []


def _before_fork() -> None:
    # The same list, in the same order, is released after the fork.
    _forking[:] = list(_emitters)
    for emitter in _forking:
        emitter._before_fork()


def _after_fork_parent() -> None:
    for emitter in reversed(_forking):
        emitter._after_fork_parent()
    _forking.clear()


def _after_fork_child() -> None:
    for emitter in _forking:
        emitter._after_fork_child()
    _forking.clear()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child)

_register_threading_atexit = getattr(threading, "_register_atexit", None)
if _register_threading_atexit is not None:
    _register_threading_atexit(_at_exit)
else:  # pragma: no cover - CPython >= 3.9 has it
    atexit.register(_at_exit)
