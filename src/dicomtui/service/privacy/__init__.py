"""Privacy: anonymization on receive, the map of subject codes, restore, masked logs."""
