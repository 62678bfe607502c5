"""Tab completion: the script `mnist -sc install=bash` writes, run by a real bash."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import MNIST, imports_tensorflow, mnist, mnist_imports

# Complete each line as bash would at its end (the word under the cursor is the last one, or a
# new empty one after a space) and print "line|candidates".
BASH = r"""
eval "$(mnist -sc install=bash)"
complete -p mnist
for line in "$@"; do
    COMP_LINE="$line"; COMP_POINT=${#line}; words=($line)
    if [[ "$line" == *" " ]]; then COMP_CWORD=${#words[@]}; else COMP_CWORD=$((${#words[@]} - 1)); fi
    COMPREPLY=(); hydra_bash_completion
    echo "$line|${COMPREPLY[*]}"
done
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_subcommands_options_keys_and_files(tmp_path: Path) -> None:
    (tmp_path / "run.keras").write_text("")
    lines = [
        "mnist ",
        "mnist ev",
        "mnist train model=le",
        "mnist train -m seed=0,1 optimizer=",
        "mnist train trainer.ep",
        "mnist eval ck",
        "mnist eval ckpt=./ru",
        "mnist nope x",
    ]
    env = {**os.environ, "PATH": f"{Path(MNIST).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-c", BASH, "bash", *lines], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    registration, *answers = proc.stdout.splitlines()
    assert registration.endswith("-F hydra_bash_completion mnist")
    got = dict(answer.split("|") for answer in answers)
    assert got == {
        "mnist ": "train eval predict show summary report export",
        "mnist ev": "eval",
        "mnist train model=le": "model=lenet5 model=lenet5_bn model=lenet5_classic",
        "mnist train -m seed=0,1 optimizer=": "optimizer=adam optimizer=rmsprop optimizer=sgd",
        "mnist train trainer.ep": "trainer.epochs=",
        "mnist eval ck": "ckpt=",
        "mnist eval ckpt=./ru": "ckpt=./run.keras",
        "mnist nope x": "",
    }


def test_fish_queries_get_one_candidate_a_line_without_tensorflow(tmp_path: Path) -> None:
    proc, imported = mnist_imports(
        "-sc", "query=fish", cwd=tmp_path, env={"COMP_LINE": "mnist summary model=cnn"}
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n") == ["model=cnn_v2", "model=cnn_v3", ""]
    assert "hydra" in imported and not imports_tensorflow(imported)
    proc = mnist("-sc", "query=fish", cwd=tmp_path, env={"COMP_LINE": "mnist s"})
    assert proc.stdout.split("\n") == ["show", "summary", ""]
    assert not (tmp_path / "outputs").exists()


def test_hydra_help_shows_commands_that_install_it(tmp_path: Path) -> None:
    helped = mnist("eval", "--hydra-help", cwd=tmp_path).stdout
    assert 'eval "$(mnist eval -sc install=bash)"' in helped
    script = mnist("eval", "-sc", "install=bash", cwd=tmp_path)
    assert (
        script.returncode == 0
        and script.stdout == mnist("-sc", "install=bash", cwd=tmp_path).stdout
    )
