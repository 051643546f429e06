"""The typer command line (thin; heavy imports happen inside the commands)."""
