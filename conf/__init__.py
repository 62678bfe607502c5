# Marks conf/ as the package `mnistcli.conf` (see pyproject.toml), so Hydra finds the configs
# through pkg://mnistcli.conf in editable and non-editable installs alike.
