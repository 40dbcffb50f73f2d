"""Receiving: the listeners, the association and C-STORE handlers, the storage writer,
and the traffic (associations in progress and counters)."""
