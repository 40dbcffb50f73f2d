"""dicom layer (see DESIGN.md)."""
