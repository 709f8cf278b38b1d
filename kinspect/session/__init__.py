"""The time-travel controller over the simulated machine: the session's cursor and run control,
and the questions the inspector asks of it (:mod:`.queries`)."""
