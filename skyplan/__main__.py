"""`python -m skyplan` runs the CLI."""

from skyplan.cli import main

main()
