"""`accelerate launch -m lightvid.train --config FILE`: the same as `lightvid train --config FILE`."""
import sys

from lightvid.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
