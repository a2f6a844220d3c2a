"""`ssl-robot`: the offline command line (simulate, label, train, export, evaluate, ...).

Each sub-command lives in its own module under `ssl_robot.commands` and provides
``add_parser(subparsers)`` (which registers its parser and sets ``func``) and the
function it registers. Modules are imported lazily so that `ssl-robot --help` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: Sub-command modules, in the order `--help` lists them.
COMMAND_MODULES = (
    'ssl_robot.commands.sim',
    'ssl_robot.commands.bag',
    'ssl_robot.commands.label',
    'ssl_robot.commands.train',
    'ssl_robot.commands.export',
    'ssl_robot.commands.evaluate',
    'ssl_robot.commands.terrain_eval',
    'ssl_robot.commands.pretext',
    'ssl_robot.commands.text',
    'ssl_robot.commands.up',
    'ssl_robot.commands.demo',
)


def build_parser() -> argparse.ArgumentParser:
    """Build the `ssl-robot` parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog='ssl-robot', description='Self-supervised robot learning from its own sensors.')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a sub-command not written yet
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ssl-robot`; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear one-line error, not a traceback, for known errors
        if args.verbose or not _is_user_error(exc):
            raise
        print(f'ssl-robot {args.command}: error: {exc}', file=sys.stderr)
        return 2


def _is_user_error(exc: Exception) -> bool:
    from ssl_robot.errors import USER_ERRORS
    return isinstance(exc, USER_ERRORS)


if __name__ == '__main__':
    sys.exit(main())
