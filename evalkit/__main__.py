"""`python -m evalkit`: the same as the `evalkit` command."""

from evalkit.cli import entry

if __name__ == "__main__":
    entry()
