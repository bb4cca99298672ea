"""Runs the real discord.py client (2.7.1, from tests/interop/discord/install-dpy.sh) against a
Discord-compatible gateway, and reports what it does as JSON lines, for tether's interop tests.

    <venv>/bin/python dpy_client.py --url ws://127.0.0.1:PORT --token T
        [--intents N] [--guild-ready-timeout S] [--heartbeat-timeout S]

  --url                  the gateway's WebSocket URL (ws:// needs no TLS). discord.py replaces its
                         query with ?v=10&encoding=json&compress=zlib-stream (no zstd module here).
  --token                any token; it is sent in IDENTIFY and RESUME, never printed.
  --intents              the IDENTIFY intents (default: discord.Intents.default(), no privileged ones).
  --guild-ready-timeout  seconds discord.py waits for GUILD_CREATEs after READY before on_ready
                         (library default 2.0).
  --heartbeat-timeout    seconds without any frame before discord.py drops a zombie connection
                         and resumes (library default 60.0).

Only discord.py's REST layer is replaced (HTTPClient.request: login's GET /users/@me, the
application info, GET /gateway[/bot]); its gateway code runs as shipped. The gateway address is
set through DiscordWebSocket.DEFAULT_GATEWAY: a plain Client never looks it up over REST in 2.7.1,
and returns to it after an invalid session. A passive tap on aiohttp's receive counts binary and
text frames, to show compression was used.

stdout, one JSON object a line, flushed:
  {"kind":"ready","session_id":S,"user_id":U,"guilds":N,"resume_gateway_url":URL,
   "frames":{"binary":B,"text":T}}                              on_ready; frames: data frames so far
  {"kind":"resumed","session_id":S,"frames":{...}}              on_resumed
  {"kind":"connect"} / {"kind":"disconnect"}                    on_connect (READY) / on_disconnect
  {"kind":"dispatch","t":T,"s":S}                               every op 0 received
  {"kind":"recv","op":N,"d":D}                                  every other op received
  {"kind":"send","op":N,...}                                    every frame sent through discord.py's
                                                                 send: IDENTIFY (token left out),
                                                                 RESUME (seq, session_id), the
                                                                 heartbeat right after HELLO (d).
                                                                 Later heartbeats bypass it: they
                                                                 show as log lines "Keeping shard
                                                                 ID None websocket alive with
                                                                 sequence N."
  {"kind":"log","logger":L,"level":LEVEL,"msg":M[,"exc":E]}     discord.* log records, DEBUG and up
                                                                 (less the per-frame "WebSocket
                                                                 Event" and "Dispatching event"
                                                                 lines: see recv/dispatch)
  {"kind":"error","where":W,"error":E}                          a failure; unknown REST calls too
  {"kind":"exit","code":N,"frames":{...}}                       last line
Every line also has "ts": seconds since the start.
stdin: a line `close`, or end of input, makes it `await client.close()` and exit 0 (before the
first socket, it cancels the login instead). Closed during discord.py's 5 s wait before a
re-IDENTIFY, discord.py goes on and fails: {"kind":"error","where":"shutdown",...}, still exit 0.
Exit 1 if the client stops by itself (e.g. a close code it will not reconnect after: 4004, 4010-4014).
"""

import argparse
import asyncio
import json
import logging
import sys
import threading
import time
import traceback

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import HTTPClient

_out_lock = threading.Lock()


_t0 = time.monotonic()


def emit(obj):
    obj["ts"] = round(time.monotonic() - _t0, 3)
    line = json.dumps(obj, default=str)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


USER = {
    "id": "1",
    "username": "bot",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
    "system": False,
    "mfa_enabled": False,
    "verified": True,
    "flags": 0,
    "public_flags": 0,
}
APPLICATION = {
    "id": "1",
    "name": "tether-interop",
    "description": "",
    "icon": None,
    "bot_public": False,
    "bot_require_code_grant": False,
    "owner": USER,
    "verify_key": "00",
    "flags": 0,
}


def install_fake_rest(url):
    """Replaces discord.py's REST requests (and only those) with canned answers."""

    async def request(self, route, **kwargs):
        key = (route.method, route.path)
        if key == ("GET", "/users/@me"):
            return dict(USER)
        if key == ("GET", "/oauth2/applications/@me"):
            return dict(APPLICATION)
        if key == ("GET", "/gateway/bot"):
            limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
            return {"url": url, "shards": 1, "session_start_limit": limit}
        if key == ("GET", "/gateway"):
            return {"url": url}
        emit({"kind": "error", "where": "rest", "error": f"unexpected REST call {route.method} {route.path}"})
        raise RuntimeError(f"no REST here: {route.method} {route.path}")

    HTTPClient.request = request


FRAMES = {"binary": 0, "text": 0}


def count_frames():
    """Counts the data frames aiohttp hands discord.py, binary (compressed) or text: a tap on
    aiohttp's receive that only looks, so a test can tell compression was used."""
    receive = aiohttp.ClientWebSocketResponse.receive

    async def counting_receive(self, *a, **kw):
        msg = await receive(self, *a, **kw)
        if msg.type is aiohttp.WSMsgType.BINARY:
            FRAMES["binary"] += 1
        elif msg.type is aiohttp.WSMsgType.TEXT:
            FRAMES["text"] += 1
        return msg

    aiohttp.ClientWebSocketResponse.receive = counting_receive


class JsonLogHandler(logging.Handler):
    def emit(self, record):
        try:
            if record.name == "discord.gateway" and str(record.msg).startswith("For Shard ID %s: WebSocket Event"):
                return  # every frame received: the recv and dispatch lines say it
            if record.name == "discord.client" and str(record.msg).startswith(("Dispatching event", "%s has successfully")):
                return  # every event dispatched, every handler registered
            obj = {"kind": "log", "logger": record.name, "level": record.levelname, "msg": record.getMessage()}
            if record.exc_info and record.exc_info[1] is not None:
                obj["exc"] = "".join(traceback.format_exception_only(*record.exc_info[:2])).strip()
            emit(obj)
        except Exception:
            self.handleError(record)


def frame_summary(raw):
    try:
        msg = json.loads(raw)
    except Exception:
        return {"raw": str(raw)[:200]}
    return msg if isinstance(msg, dict) else {"raw": str(raw)[:200]}


def make_client(args):
    intents = discord.Intents._from_value(args.intents) if args.intents is not None else discord.Intents.default()
    client = discord.Client(
        intents=intents,
        enable_debug_events=True,
        guild_ready_timeout=args.guild_ready_timeout,
        heartbeat_timeout=args.heartbeat_timeout,
    )

    @client.event
    async def on_ready():
        emit({
            "kind": "ready",
            "session_id": client.ws.session_id if client.ws else None,
            "user_id": str(client.user.id) if client.user else None,
            "guilds": len(client.guilds),
            "resume_gateway_url": str(client.ws.gateway) if client.ws else None,
            "frames": dict(FRAMES),
        })

    @client.event
    async def on_resumed():
        emit({"kind": "resumed", "session_id": client.ws.session_id if client.ws else None, "frames": dict(FRAMES)})

    @client.event
    async def on_connect():
        emit({"kind": "connect"})

    @client.event
    async def on_disconnect():
        emit({"kind": "disconnect"})

    @client.event
    async def on_socket_raw_receive(raw):
        msg = frame_summary(raw)
        if msg.get("op") == 0:
            emit({"kind": "dispatch", "t": msg.get("t"), "s": msg.get("s")})
        else:
            emit({"kind": "recv", "op": msg.get("op"), "d": msg.get("d")})

    @client.event
    async def on_socket_raw_send(raw):
        msg = frame_summary(raw)
        op = msg.get("op")
        d = msg.get("d")
        out = {"kind": "send", "op": op}
        if op == 6 and isinstance(d, dict):  # RESUME
            out.update(seq=d.get("seq"), session_id=d.get("session_id"))
        elif op == 2 and isinstance(d, dict):  # IDENTIFY, token left out
            out.update(intents=d.get("intents"), shard=d.get("shard"))
        elif op != 2:
            out["d"] = d
        emit(out)

    @client.event
    async def on_error(event, *a, **kw):
        emit({"kind": "error", "where": f"on_{event}", "error": traceback.format_exc().strip().splitlines()[-1]})

    return client


async def main(args):
    url = args.url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
    install_fake_rest(url)
    count_frames()
    client = make_client(args)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "close":
                break
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read_stdin, name="stdin", daemon=True).start()

    async def runner():
        await client.start(args.token)

    run = asyncio.create_task(runner())
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if run in done:
        exc = run.exception()
        if exc is not None:
            emit({"kind": "error", "where": "client.start", "error": f"{type(exc).__name__}: {exc}"})
            code = 1
        else:
            emit({"kind": "error", "where": "client.start", "error": "returned before close was asked"})
            code = 1
        waiter.cancel()
    if run not in done and client.ws is None:
        # asked to close before any socket: stop the login or connect where it is, for
        # discord.py would go on connecting after close() and fail
        run.cancel()
    if not client.is_closed():
        # as an application would: close() while connect() is polling the socket
        await client.close()
    if run not in done:
        try:
            await asyncio.wait_for(run, timeout=10)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            # discord.py itself fails so when closed during the 5 s wait before a re-IDENTIFY
            emit({"kind": "error", "where": "shutdown", "error": f"{type(exc).__name__}: {exc}"})
    return code


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--intents", type=int, default=None)
    p.add_argument("--guild-ready-timeout", type=float, default=2.0)
    p.add_argument("--heartbeat-timeout", type=float, default=60.0)
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    handler = JsonLogHandler()
    lg = logging.getLogger("discord")
    lg.setLevel(logging.DEBUG)
    lg.addHandler(handler)
    lg.propagate = False
    code = 1
    try:
        code = asyncio.run(main(args))
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        emit({"kind": "error", "where": "main", "error": f"{type(exc).__name__}: {exc}"})
        code = 1
    emit({"kind": "exit", "code": code, "frames": dict(FRAMES)})
    sys.exit(code)
