"""Sub-commands of `ssl-robot`, one module each with `add_parser(subparsers)` and `run(args)`."""
