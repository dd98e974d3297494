"""Subcommands of the ``loopnet`` command line, one module each.

A module exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``, and
optionally ``DESCRIPTION`` and ``EXAMPLES`` (shown by ``--help``). It is registered by one line
in ``loopnet.cli.COMMANDS``. Import heavy things (the compiled core) inside ``run`` so that
``loopnet --help`` stays fast.
"""
