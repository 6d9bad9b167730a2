"""Orchestration with no UI: takes Settings, adapters and a Reporter; never imports typer/rich."""
