"""The Backend: the one interface front ends use, local or over the control socket."""
