"""Command line: ``python -m inpaintlib {run,run-all,book,presets} ...``.

Examples::

    python -m inpaintlib run notebooks/01_unet_baseline.ipynb --preset cpu -p steps 500
    python -m inpaintlib run-all --preset smoke
    python -m inpaintlib book --preset cpu

Parameter values are read as YAML (``-p steps 500`` gives an int, ``-p channels [16,32]`` a list),
and numbers as a person types them (``-p lr 1e-4`` is a float, although YAML 1.1 reads it as text).
Every failure is one line on stderr: exit status 2 for a bad request (before any work), 1 for failed
work (a cell raised, a run hung, the book did not build), 130 when interrupted (Ctrl-C; the run is
kept and resumes from its last checkpoint when the same command is given again).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import yaml

from inpaintlib.config import PRESETS, ConfigError, notebook_names, preset_values


# A number as people type it: 1e-4, 2E5, .5, 5., -3e+2 (YAML 1.1 wants "1.0e-4" and reads "1e-4" as a string).
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _parse_value(raw: str):
    value = yaml.safe_load(raw)
    if isinstance(value, str) and NUMBER.match(raw.strip()):
        number = float(raw)
        return number if math.isfinite(number) else value
    return value


def _parse_parameters(pairs: list[list[str]]) -> dict:
    params = {}
    for key, raw in pairs:
        try:
            params[key] = _parse_value(raw)
        except yaml.YAMLError as err:
            reason = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"cannot parse value {raw!r} of parameter {key!r} as YAML: {reason}") from err
    return params


def _runs_dir(raw: str | None) -> Path | None:
    if raw is None:
        return None
    if not raw.strip():
        raise ConfigError("--runs-dir is empty; give a folder (default runs/)")
    return Path(raw)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inpaintlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("run", "execute one notebook"), ("run-all", "execute every notebook"), ("book", "run all, then build the HTML book")):
        p = sub.add_parser(name, help=help_)
        if name == "run":
            p.add_argument("notebook", help="path or name, e.g. notebooks/01_unet_baseline.ipynb")
            p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
        p.add_argument("--preset", default="cpu", help=f"one of {', '.join(PRESETS)} (default cpu)")
        p.add_argument("--runs-dir", default=None, help="where run folders go (default runs/)")
        if name != "book":
            p.add_argument("--force", action="store_true", help="execute even if a finished identical run exists")
    sub.add_parser("presets", help="print every notebook's preset values")
    parser.add_argument("--traceback", action="store_true", help="show the traceback of an unexpected error")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from inpaintlib import runner

    try:
        return _command(args, runner)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except runner.RunFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the run is kept; give the same command again to resume it from its last checkpoint",
              file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - one line instead of a traceback; --traceback shows it
        if args.traceback:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(f"error: {type(err).__name__}: {message} (run with --traceback for details)", file=sys.stderr)
        return 1


def _command(args: argparse.Namespace, runner) -> int:
    if args.command == "presets":
        for nb in notebook_names():
            for preset in PRESETS:
                print(f"{nb:24s} {preset:6s} {preset_values(nb, preset)}")
    elif args.command == "run":
        result = runner.run(args.notebook, args.preset, _parse_parameters(args.parameter), _runs_dir(args.runs_dir),
                            args.force)
        print(f"{'reused' if result.reused else 'finished'}: {result.path}")
    elif args.command == "run-all":
        runner.run_all(args.preset, _runs_dir(args.runs_dir), args.force)
    elif args.command == "book":
        from inpaintlib.book import BookBuildError, build

        try:
            print(f"book: {build(args.preset, _runs_dir(args.runs_dir)) / 'index.html'}")
        except BookBuildError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
