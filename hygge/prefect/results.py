"""An entity run as the land flow returns it (JSON-safe) and as its `hygge-land` artifact shows it."""

from __future__ import annotations

from typing import Any

from hygge.runner import EntityResult


def public_result(result: EntityResult) -> dict[str, Any]:
    return {
        "flow": result.flow,
        "entity": result.entity,
        "status": result.status,
        "rows": result.rows,
        "deleted": result.deleted,
        "duration": round(result.duration, 3),
        "watermark_before": result.watermark_before,
        "watermark_after": result.watermark_after,
        "message": result.message,
        "fabric": (
            {
                "status": result.confirmation.status,
                "processed_rows": result.confirmation.processed_rows,
                "seconds": round(result.confirmation.seconds, 3),
            }
            if result.confirmation is not None
            else None
        ),
    }


def artifact_row(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "entity": f"{result['flow']}.{result['entity']}",
        "status": result["status"],
        "rows": result["rows"],
        "deleted": result.get("deleted", 0),
        "seconds": result["duration"],
        "watermark": f"{result['watermark_before'] or '-'} → {result['watermark_after'] or '-'}",
        "fabric": f"{fabric['status']} in {fabric['seconds']:.1f} s" if (fabric := result.get("fabric")) else "",
        "message": result["message"],
    }
