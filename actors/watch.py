"""Watch the event stream from a terminal: one JSON line per message, pings answered.

    python -m actors.watch --channels ingest,jobs [--since 0] [--url ws://127.0.0.1:8000/ws/events]

The key comes from ``--key`` or ``$PREDATOR_API_KEY``. On a dropped connection it reconnects with the
last seq it saw per channel, so nothing is missed while the history still holds it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


async def watch(url: str, key: str, channels: str, since: str | None) -> None:
    cursors: dict[str, int] = {}
    while True:
        resume = ",".join(f"{c}:{s}" for c, s in cursors.items()) or since
        query = f"?channels={channels}" + (f"&since={resume}" if resume else "")
        try:
            async with connect(url + query, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "ping":
                        await ws.send(json.dumps({"type": "pong", "id": message["id"]}))
                        continue
                    for event in message.get("events", []):
                        cursors[event["channel"]] = event["seq"]
                        print(json.dumps(event, ensure_ascii=False), flush=True)
                    if message["type"] != "events":
                        print(json.dumps(message, ensure_ascii=False), flush=True)
        except (ConnectionClosed, OSError, InvalidStatus) as err:
            if getattr(err, "rcvd", None) is not None and err.rcvd.code == 1008:
                sys.exit(f"refused: {err.rcvd.reason}")
            print(json.dumps({"type": "disconnected", "reason": str(err)}), file=sys.stderr, flush=True)
            await asyncio.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description="Print events from /ws/events.")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/events")
    parser.add_argument("--key", default=os.environ.get("PREDATOR_API_KEY"))
    parser.add_argument("--channels", default="system,jobs,ingest,training,diagnostics,copilot")
    parser.add_argument("--since", help="seq for all channels, or 'jobs:3,ingest:9'; default: new events only")
    args = parser.parse_args()
    if not args.key:
        parser.error("give --key or set PREDATOR_API_KEY")
    try:
        asyncio.run(watch(args.url, args.key, args.channels, args.since))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
