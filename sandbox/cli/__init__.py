"""The typer CLI: thin commands over sandbox.core; errors become messages here and only here."""
