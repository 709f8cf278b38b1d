"""The subcommands, one module a group, each with ``add_commands(subparsers)`` and
``run_command(args)``: :mod:`.simulate` (run, compare, profiles), :mod:`.reports` (report,
symbolize), :mod:`.ui` (tui, serve); :mod:`.common` holds what they share.  ``kinspect/cli.py``
builds the parser from them and dispatches."""
