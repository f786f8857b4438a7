"""hygge: land SQL tables and files in Delta, parquet and Fabric Open Mirroring landing zones."""

__version__ = "0.1.0"
