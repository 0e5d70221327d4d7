"""`accelerate launch [--num_processes N] [--cpu] -m lightvid.train --config FILE [--max-steps N]`: what
`lightvid train` does, as a module that launchers can start on every process. A bad config is one line, exit 2;
Ctrl-C is one line, exit 130 (a rerun resumes)."""
import argparse
import sys
from pathlib import Path

from lightvid.errors import LightvidError

from . import load_config, train


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # a usage error is one line and exit code 2, as everywhere in lightvid
        print(f"lightvid: error: {message} (see python -m lightvid.train --help)", file=sys.stderr)
        sys.exit(2)


def main(argv=None) -> int:
    parser = _OneLineParser(prog="python -m lightvid.train", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="a training YAML file (see configs/)")
    parser.add_argument("--max-steps", type=int, help="stop after this many more steps (a rerun resumes)")
    args = parser.parse_args(argv)
    try:
        out = train(load_config(args.config), max_steps=args.max_steps)
    except LightvidError as e:
        print(f"lightvid: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: temporary outputs are gone, a rerun resumes from the last checkpoint
        print("lightvid: interrupted; run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 130
    print(f"checkpoints in {out / 'checkpoints'}, model in {out / 'model'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
