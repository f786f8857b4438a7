"""hygge: land SQL tables and files in Delta, parquet and Fabric Open Mirroring landing zones."""

from hygge.memory import tune_allocators

tune_allocators()

__version__ = "0.1.0"
