"""Sending: the DICOM SCU side (C-ECHO, C-STORE of files or datasets to a peer)."""
