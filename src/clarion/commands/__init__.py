"""Subcommands of the ``clarion`` command, one module each.

Each module has ``add_parser(subparsers)``, which adds its subcommand and sets
``run`` as the parser's default ``handler``: a function that takes the parsed
arguments and returns an exit status.
"""
