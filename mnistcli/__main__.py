"""`python -m mnistcli`: the same as the `mnist` command."""

from mnistcli.cli import main

main()
