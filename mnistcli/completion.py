"""Tab completion in bash, zsh and fish: `eval "$(mnist -sc install=bash)"`.

Hydra writes the shell's script and answers its queries (config groups, their options and keys)
for one `@hydra.main`; `mnist` has one per subcommand. So this module completes the subcommand's
name itself and hands a query about the rest of the line to that subcommand's Hydra. No
TensorFlow: a query composes configs only."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping

from mnistcli.errors import UserError

FLAGS = ("-sc", "--shell-completion")
REQUEST = re.compile(r"(install|uninstall|query)=(bash|zsh|fish)")


def _flag_and_request(args: list[str]) -> tuple[str, str] | None:
    """The completion flag as typed and what it asks (`install=bash`), or None."""
    for i, arg in enumerate(args):
        if arg in FLAGS:
            return arg, args[i + 1] if i + 1 < len(args) else ""
        if arg.startswith(f"{FLAGS[1]}="):
            return FLAGS[1], arg.partition("=")[2]
    return None


def requested(args: list[str]) -> bool:
    """Whether the command line asks for Hydra's shell completion (install, uninstall, query)."""
    return _flag_and_request(args) is not None


def complete(args: list[str], tasks: Mapping[str, Callable[[], None]]) -> None:
    """Answer `mnist [SUBCOMMAND] -sc install=SHELL`, `uninstall=SHELL` or `query=SHELL` (what
    the installed script asks while the user types: the line so far is in $COMP_LINE)."""
    flag, request = _flag_and_request(args) or ("", "")
    if not REQUEST.fullmatch(request):
        raise UserError(
            f"{flag} takes install=SHELL, uninstall=SHELL or query=SHELL, SHELL one of bash, "
            f"zsh, fish, not '{request}'; e.g. eval \"$(mnist -sc install=bash)\""
        )
    task = "train"  # the script Hydra installs is the same for every subcommand
    if request.startswith("query="):
        shell = request.partition("=")[2]
        after_app = re.match(r"\s*\S+\s+(.*)", os.environ.get("COMP_LINE", ""), re.DOTALL)
        if after_app is None:  # still typing `mnist` itself
            return
        line = after_app.group(1)
        if re.fullmatch(r"\S*", line):  # still typing the subcommand
            names = [name for name in tasks if name.startswith(line)]
            print(("\n" if shell == "fish" else " ").join(names))
            return
        task = line.split()[0]
        if task not in tasks:
            return
        os.environ["COMP_LINE"] = line  # Hydra takes its first word (the subcommand) as the app
    sys.argv = ["mnist", flag, request]  # the name the script registers and calls
    tasks[task]()
