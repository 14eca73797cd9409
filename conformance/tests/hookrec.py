"""Hook program for the conformance suite: records what the runtime gave it.

argv: NAME LOGFILE EXIT_CODE SLEEP_SECONDS.  Appends one JSON line with the
state read from stdin, the namespaces it runs in and the state pid's exe.
"""
import json
import os
import sys
import time

name, log, rc, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
raw = sys.stdin.read()
try:
    state = json.loads(raw)
except ValueError:
    state = {"unparsable": raw}
rec = {"name": name, "state": state, "time": time.time(), "cwd": os.getcwd(),
       "ns": {k: os.readlink(f"/proc/self/ns/{k}") for k in ("mnt", "pid", "net", "uts")}}
pid = state.get("pid") if isinstance(state, dict) else None
if pid:
    try:
        rec["pid_exe"] = os.readlink(f"/proc/{pid}/exe")
        rec["pid_cmdline"] = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].decode()
    except OSError as e:
        rec["pid_exe"] = f"error {e.errno}"
if pause:
    time.sleep(pause)
    rec["done"] = time.time()
with open(log, "a") as f:
    f.write(json.dumps(rec) + "\n")
sys.exit(rc)
