"""Sites: facilities (AE titles and ports), allowed callers, and the access check."""
