"""One-row inserts and point reads through erth-sync's Python face, on the
file erth-bench's own Rust measurement used (its `faces` section).

    python face_bench.py --db FILE --n N

`Database.add_todo` and `Database.get_todo` awaited one after the other in
one asyncio loop (the face's own API), then the same through
`BlockingDatabase` (its blocking wrapper, which runs them on a private loop
thread). Each call is timed alone with `time.perf_counter_ns`, after 20
calls of each that are not kept. Prints one JSON object: samples in ms.
"""

import argparse
import asyncio
import json
import platform
import time

import erth_sync

WARM = 20


def ms(start: int) -> float:
    return (time.perf_counter_ns() - start) / 1e6


async def run_async(path: str, n: int) -> dict:
    db = await erth_sync.Database.open(path)
    try:
        ids = []
        insert, read = [], []
        for i in range(WARM + n):
            t = time.perf_counter_ns()
            todo = await db.add_todo(f"python {i}")
            if i >= WARM:
                insert.append(ms(t))
            ids.append(todo.id)
        for i in range(WARM + n):
            t = time.perf_counter_ns()
            todo = await db.get_todo(ids[i])
            if i >= WARM:
                read.append(ms(t))
            if todo.id != ids[i]:
                raise SystemExit(f"read {todo.id}, not {ids[i]}")
        return {"insert": insert, "read": read}
    finally:
        db.close()


def run_blocking(path: str, n: int) -> dict:
    db = erth_sync.BlockingDatabase.open(path)
    try:
        ids = []
        insert, read = [], []
        for i in range(WARM + n):
            t = time.perf_counter_ns()
            todo = db.add_todo(f"python blocking {i}")
            if i >= WARM:
                insert.append(ms(t))
            ids.append(todo.id)
        for i in range(WARM + n):
            t = time.perf_counter_ns()
            todo = db.get_todo(ids[i])
            if i >= WARM:
                read.append(ms(t))
            if todo.id != ids[i]:
                raise SystemExit(f"read {todo.id}, not {ids[i]}")
        return {"insert": insert, "read": read}
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--n", type=int, required=True)
    args = parser.parse_args()
    out = asyncio.run(run_async(args.db, args.n))
    out["blocking"] = run_blocking(args.db, args.n)
    out["version"] = f"Python {platform.python_version()}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
