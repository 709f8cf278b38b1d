"""Real KASAN reports, read from a console log: parsed (:mod:`.kreport`), explained byte by
byte and re-enacted in the engine (:mod:`.explain`), their stacks symbolized with a vmlinux
(:mod:`.symbols`), and read for the UI and the ``kinspect report`` command (:mod:`.reading`).

The simulated machine's own bad-access report is :mod:`kinspect.engine.report`; this package
touches the engine only through :func:`.explain.run_replay`."""
