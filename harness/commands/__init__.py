"""Sub-commands of the tfbench CLI that are not analysis modules themselves."""
