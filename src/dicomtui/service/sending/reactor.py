"""A pynetdicom requestor's reactor, parked before each request we make.

pynetdicom's send_c_*() pause the association's reactor thread before they send and
then wait for the answer, but that handshake races: the reactor can be just past its
checkpoint when the pause is asked for, still count as paused, and then take the
answer off the DIMSE queue itself, while send_c_*() waits dimse_timeout for it. On a
busy machine (the suite under two busy cores) that ended `dicomtui send` transfers
with "no answer". Here the checkpoint is cleared first and we wait until the reactor
thread is really blocked on it (or gone); send_c_*() then unparks it as usual.
"""

from __future__ import annotations

import time

PARK_WAIT_S = 10.0


def parked(assoc):
    """`assoc`, its reactor parked for one request; a no-op where pynetdicom's
    internals differ from those this was written for (3.0)."""
    checkpoint = getattr(assoc, "_reactor_checkpoint", None)
    if checkpoint is None or not hasattr(assoc, "_is_paused"):
        return assoc
    checkpoint.clear()
    waiters = getattr(getattr(checkpoint, "_cond", None), "_waiters", None)
    deadline = time.monotonic() + PARK_WAIT_S
    while assoc.is_alive() and time.monotonic() < deadline:
        if assoc._is_paused and (waiters is None or waiters):
            break
        time.sleep(0.0001)
    return assoc
