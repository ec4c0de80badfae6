"""runstream's top layer: the ``runstream`` command and (``runstream server``) the HTTP server.

The only package that wires the SDK (:mod:`producers`) and ingest
(:mod:`consumers`) together. Every subcommand lives in a module of its own,
registered in :data:`runstream.cli.COMMANDS`.
"""
