"""The family commands of the `sysgym` CLI, one module per family (`sysgym vm`, `sysgym jobs`, `sysgym serve`,
...). Each module has `register(subparsers)`; `sysgym.experiments.cli` discovers them, so a new family adds
its command by adding a module here. Old command names are registered as argparse aliases.
"""
