"""`python -m teeka.kit.pgcheck URL`: exit 0 when a PostgreSQL server answers at URL."""

from __future__ import annotations

import asyncio
import sys


async def _check(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=3)
    await conn.close()


def main() -> int:
    try:
        asyncio.run(_check(sys.argv[1]))
    except Exception:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
