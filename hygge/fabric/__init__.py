"""Microsoft Fabric helpers: the Arrow → Fabric type map, batch conforming and the `_schema.json` manifest.

The Open Mirroring contract these follow is in shared/DESIGN.md ("Fabric Open Mirroring landing zone").
"""
