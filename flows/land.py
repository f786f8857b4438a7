"""Prefect entrypoint named by prefect.yaml: `flows/land.py:land`."""

from hygge.prefect.land import land

__all__ = ["land"]

if __name__ == "__main__":
    land()
