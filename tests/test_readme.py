"""Every ```python block of the README runs."""
import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code):
    exec(compile(code, str(README), "exec"), {})


def test_readme_names_the_test_command():
    assert "make test" in README.read_text()


# ```bash blocks run here as written, in a scratch folder holding the repository's examples/ and configs/; ```sh blocks
# need what a clean clone lacks (an SVD folder, hours of CPU) and are shown only.
COMMANDS = [line.split("  #")[0].strip() for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
            for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_commands_run_as_written(tmp_path, monkeypatch, capsys):
    import shlex

    from lightvid.cli import main

    root = README.parent
    for folder in ("examples", "configs"):
        (tmp_path / folder).symlink_to(root / folder)
    monkeypatch.chdir(tmp_path)
    assert COMMANDS, "the README has no bash commands"
    for command in COMMANDS:
        words = shlex.split(command)
        assert words[0] == "lightvid", command
        code = main(words[1:])
        assert code == 0, f"{command}: exit {code}: {capsys.readouterr().err}"
