"""Placeholder replaced by the agent's command line."""

import typer

app = typer.Typer()
