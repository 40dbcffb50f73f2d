"""The control API on the data dir's socket, and `serve`, the process that hosts it."""
