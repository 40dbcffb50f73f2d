"""dicomtui: a DICOM receiver with an operations console in the terminal."""

__version__ = "0.1.0"
