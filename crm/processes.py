"""Work split over forked processes, each part on database connections of its own.

Python computes under one lock (the GIL): a CPU-bound pass over every customer
uses one core however many the machine has. Parts run in forked processes, so
each starts with what the caller has loaded and configured (settings, the test
database) without a second django.setup().

A plain os.fork, not multiprocessing: multiprocessing runs the after-fork hooks
kombu registers, which close the broker connections the child inherited by
talking on the parent's sockets (a consumer's pending BRPOP makes that hang).
Here the child never uses an inherited socket: Django's connections are closed
before the fork, and redis-py opens new ones in a process whose pid changed.
A child ends with os._exit, so none of the parent's exit handlers run in it.
"""

import os
import signal
import sys
import traceback
from multiprocessing import Pipe
from multiprocessing.connection import wait

from django.db import connections


class PartFailed(RuntimeError):
    """A part raised (its traceback is in the message) or its process died."""


def parts_run(work, parts, progress=None):
    """Run `work(part, report)` for every part at once, each in a process of its own; returns the results in order.

    `report(n)` inside a part calls `progress(n)` here, in the caller's process.
    Results and reports travel pickled. Parts commit their own transactions, so
    a failure cannot undo the others: every part is left to end, then the
    failures are raised together. The caller must not be inside a transaction:
    its connections are closed before the fork (one socket used by two
    processes would interleave their protocol), and the parts could not see
    its uncommitted rows.
    """
    if any(connection.in_atomic_block for connection in connections.all(initialized_only=True)):
        raise RuntimeError("parts_run() cannot run inside a transaction: the parts could not see its rows")
    connections.close_all()
    sys.stdout.flush()
    sys.stderr.flush()
    children = []  # (pid, reader)
    results = [None] * len(parts)
    failures = []
    try:
        for index, part in enumerate(parts):
            reader, writer = Pipe(duplex=False)
            pid = os.fork()
            if pid == 0:
                reader.close()
                for _, other in children:
                    other.close()
                _part(work, part, writer)  # never returns
            writer.close()
            children.append((pid, reader))
        readers = {reader: index for index, (_, reader) in enumerate(children)}
        ended = set()
        while readers:
            for reader in wait(list(readers)):
                index = readers[reader]
                try:
                    kind, value = reader.recv()
                except EOFError:  # the part's process has ended
                    del readers[reader]
                    if index not in ended:
                        ended.add(index)
                        failures.append(f"part {index}: its process died (exit code {_exit_code(children[index][0])})")
                    continue
                if kind == "progress":
                    if progress:
                        progress(value)
                    continue
                ended.add(index)
                if kind == "done":
                    results[index] = value
                else:
                    failures.append(f"part {index}:\n{value}")
    except BaseException:
        # The caller is interrupted (or a report failed): leave no part running without it.
        for pid, _ in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        raise
    finally:
        for pid, reader in children:
            reader.close()
            _exit_code(pid)
    if failures:
        raise PartFailed("\n".join(failures))
    return results


def _exit_code(pid):
    """Wait for the child and return its exit code (negative: the signal that ended it); None if already reaped."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


def _part(work, part, writer):
    code = 0
    try:
        # The parent's handlers (a Celery worker's, pytest's) are not this process's business.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        result = work(part, lambda count: writer.send(("progress", count)))
        writer.send(("done", result))
    except BaseException:  # noqa: BLE001 - reported to the parent, who raises it
        code = 1
        try:
            writer.send(("failed", traceback.format_exc()))
        except BaseException:  # noqa: BLE001 - the parent is gone: nothing left to tell
            pass
    finally:
        try:
            connections.close_all()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
