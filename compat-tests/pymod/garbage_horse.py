"""A fake `--python` command for the protocol test: greets like rqw's runner, then answers
every request with bytes that are not a frame of the protocol (as a horse whose protocol
stream an app corrupted would)."""

import json
import os
import struct
import sys

hello = json.dumps({"type": "hello", "protocol": 1, "rq_version": "x", "python": "x", "pid": os.getpid()}).encode()
sys.stdout.buffer.write(struct.pack(">I", len(hello)) + hello)
sys.stdout.buffer.flush()
while True:
    head = sys.stdin.buffer.read(4)
    if len(head) < 4:
        break
    sys.stdin.buffer.read(struct.unpack(">I", head)[0])
    sys.stdout.buffer.write(b"\x00\x00\x00\x05not json at all")
    sys.stdout.buffer.flush()
