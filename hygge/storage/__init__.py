"""The one storage layer: locations, credentials and the clients that reach them."""

from hygge.storage.location import Location, parse_location
from hygge.storage.objects import AlreadyExistsError, NotFoundError, Storage, storage_error

__all__ = ["AlreadyExistsError", "Location", "NotFoundError", "Storage", "parse_location", "storage_error"]
