"""The `evalkit` commands, one family a module; `evalkit.cli` joins them into one group."""
