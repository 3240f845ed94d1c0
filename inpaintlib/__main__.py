"""Command line: ``python -m inpaintlib {run,run-all,book,presets} ...``.

Examples::

    python -m inpaintlib run notebooks/01_unet_baseline.ipynb --preset cpu -p steps 500
    python -m inpaintlib run-all --preset smoke
    python -m inpaintlib book --preset cpu

Parameter values are read as YAML (``-p steps 500`` gives an int, ``-p channels [16,32]`` a list).
Bad requests fail before any work, with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from inpaintlib.config import PRESETS, ConfigError, notebook_names, preset_values


def _parse_parameters(pairs: list[list[str]]) -> dict:
    params = {}
    for key, raw in pairs:
        try:
            params[key] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            reason = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"cannot parse value {raw!r} of parameter {key!r} as YAML: {reason}") from err
    return params


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inpaintlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("run", "execute one notebook"), ("run-all", "execute every notebook"), ("book", "run all, then build the HTML book")):
        p = sub.add_parser(name, help=help_)
        if name == "run":
            p.add_argument("notebook", help="path or name, e.g. notebooks/01_unet_baseline.ipynb")
            p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
        p.add_argument("--preset", default="cpu", help=f"one of {', '.join(PRESETS)} (default cpu)")
        p.add_argument("--runs-dir", type=Path, default=None, help="where run folders go (default runs/)")
        if name != "book":
            p.add_argument("--force", action="store_true", help="execute even if a finished identical run exists")
    sub.add_parser("presets", help="print every notebook's preset values")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from inpaintlib import runner

    try:
        if args.command == "presets":
            for nb in notebook_names():
                for preset in PRESETS:
                    print(f"{nb:24s} {preset:6s} {preset_values(nb, preset)}")
        elif args.command == "run":
            result = runner.run(args.notebook, args.preset, _parse_parameters(args.parameter), args.runs_dir, args.force)
            print(f"{'reused' if result.reused else 'finished'}: {result.path}")
        elif args.command == "run-all":
            runner.run_all(args.preset, args.runs_dir, args.force)
        elif args.command == "book":
            from inpaintlib.book import BookBuildError, build

            try:
                print(f"book: {build(args.preset, args.runs_dir) / 'index.html'}")
            except BookBuildError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
    except (ConfigError, runner.RunFailed) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
