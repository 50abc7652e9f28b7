"""Request bodies to feature rows, and predictions to response bodies, as a model server does.

In: ``text/csv`` (one row of numbers per line) or JSON: ``{"instances": [[...], ...]}``,
``{"features": [...]}`` (one row) or a bare list of rows. Out: JSON
``{"predictions": [{"label": 1, "score": 0.93}, ...]}``, or ``label,score`` lines when
``Accept`` asks for ``text/csv``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simulator.models import rows_from

JSON = "application/json"
CSV = "text/csv"


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_rows(body: bytes, content_type: str | None) -> NDArray[np.float64]:
    """The feature rows in ``body``; ValueError naming the problem if it has none."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("body is not UTF-8") from None
    if _media(content_type) == CSV:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        if not rows:
            raise ValueError("empty CSV body")
        return rows_from([[float(cell) for cell in row] for row in rows])
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc.msg}") from None
    if isinstance(document, dict):
        if "instances" in document:
            document = document["instances"]
        elif "features" in document:
            document = [document["features"]]
        else:
            raise ValueError('JSON body needs "instances" or "features"')
    if not isinstance(document, list) or not document:
        raise ValueError("no instances in the body")
    return rows_from(document)


def render(predictions: list[tuple[int, float]], accept: str | None) -> tuple[bytes, str]:
    """The response body and its content type for ``predictions``."""
    if _media(accept) == CSV:
        lines = "".join(f"{label},{score:.6f}\n" for label, score in predictions)
        return lines.encode(), CSV
    document = {"predictions": [{"label": label, "score": round(score, 6)}
                                for label, score in predictions]}
    return json.dumps(document, separators=(",", ":")).encode(), JSON
