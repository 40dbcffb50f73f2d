"""What every component shares: the event ring, typed records, the recorder, the data
dir's lock, the settings store and the background-thread base."""
