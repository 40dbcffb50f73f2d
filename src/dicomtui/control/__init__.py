"""The control API: the Backend over HTTP on the data dir's unix socket."""
