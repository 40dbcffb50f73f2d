"""Pure DICOM functions: identify, paths and layout, anonymize, matching, synthetic data.

No I/O beyond reading or writing a dataset it is handed; never pynetdicom."""
