"""The framework's ceiling: a minimal FastAPI route that returns a constant, served by uvicorn
with the API's own server settings (:func:`service.api.server.server_options`), one worker.

    python -m bench.ceiling PORT
"""

from __future__ import annotations

import sys

from fastapi import FastAPI

app = FastAPI()
PATH = "/constant"


@app.get(PATH)
async def constant() -> dict[str, bool]:
    return {"ok": True}


def main() -> None:
    import uvicorn

    from service.api.server import server_options

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), **server_options("warning"))


if __name__ == "__main__":
    main()
