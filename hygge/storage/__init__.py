"""The one storage layer: locations, credentials and the clients that reach them."""

from hygge.storage.errors import storage_error
from hygge.storage.location import Location, parse_location
from hygge.storage.objects import AlreadyExistsError, NotFoundError, Storage

__all__ = ["AlreadyExistsError", "Location", "NotFoundError", "Storage", "parse_location", "storage_error"]
