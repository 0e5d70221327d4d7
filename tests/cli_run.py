"""Run the `lightvid` CLI in-process for tests: (exit code, stdout, stderr)."""
from lightvid.cli import main


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err
