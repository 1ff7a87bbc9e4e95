"""Command line of the environments.

    python -m envs list [NAME ...]

Lists each registered environment (or those named) with its one-line description and its
options (`name: help [kind, default]`, the shape `envs.env_help` gives), then anything the
environment says about its catalogue: for `reasoning_gym`, how many generators the installed
reasoning-gym offers, and their names.
"""

from __future__ import annotations

import argparse
import sys

from envs import EnvError, env_about, env_help, list_envs


def cmd_list(args) -> int:
    known = list_envs()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"error: unknown environment(s) {unknown}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    for name in args.names or known:
        print(f"{name}: {known[name]}")
        for option, text in env_help(name).items():
            print(f"    {option}: {text}")
        about = env_about(name)
        if about:
            print(f"  {about}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m envs", description="verirl environments")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="environments, their options and catalogues")
    listing.add_argument("names", nargs="*", help="only these environments")
    args = parser.parse_args(argv)
    try:
        return cmd_list(args)
    except EnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
