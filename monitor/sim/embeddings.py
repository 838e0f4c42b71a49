"""POST /v1/embeddings: deterministic bag-of-words vectors, so semantic-similarity signals can be exercised."""

from __future__ import annotations

import hashlib
import json
import math
import re

from starlette.requests import Request
from starlette.responses import JSONResponse

DIMENSIONS = 64
_WORD = re.compile(r"\w+")


def embed(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """Hash each lower-cased word into a signed bucket; return the unit-length vector."""
    vec = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big")
        vec[h % dimensions] += 1.0 if (h >> 16) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


async def embeddings(request: Request) -> JSONResponse:
    try:
        body = json.loads(await request.body())
        texts = body["input"]
        model = body["model"]
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": {"message": "input and model are required", "type": "invalid_request_error",
                                       "param": None, "code": None}}, status_code=400)
    if isinstance(texts, str):
        texts = [texts]
    data = [{"object": "embedding", "index": i, "embedding": embed(str(t))} for i, t in enumerate(texts)]
    tokens = sum(len(_WORD.findall(str(t))) for t in texts)
    return JSONResponse({"object": "list", "data": data, "model": model,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
