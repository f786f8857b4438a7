"""The `hygge` command line: a thin shell over the core."""
