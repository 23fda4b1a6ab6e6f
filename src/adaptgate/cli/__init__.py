"""The thin command-line layer: one module per command, each calling one library function."""
