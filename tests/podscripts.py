"""Small programs the end-to-end tests run inside a pod (``python3 -c SCRIPT ARGS``).

Shared by the local cluster's e2e tests and the compose test, which check the same
behaviour from a pod: each prints one line the test can compare.
"""

# How connecting to HOST PORT ends: "ok", "refused", or the error's type name.
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
    print("ok")
except ConnectionRefusedError:
    print("refused")
except OSError as exc:
    print(type(exc).__name__)
"""

# How connecting to each HOST:PORT in argv ends, one line each: "ok", "refused",
# "timeout" (2 s) or the errno's name ("ENETUNREACH"): unreachable said at once
# rather than a timeout is what "no route" looks like.
REACH = """
import errno, socket, sys
for target in sys.argv[1:]:
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        print("ok", flush=True)
    except ConnectionRefusedError:
        print("refused", flush=True)
    except TimeoutError:
        print("timeout", flush=True)
    except OSError as exc:
        print(errno.errorcode.get(exc.errno, type(exc).__name__), flush=True)
"""

# Tries to append to argv[1] and to create a file beside it; one line per attempt
# (a pod's user against a root-owned file on the host).
WRITE = """
import os, sys
for what, path, mode in (("append", sys.argv[1], "a"),
                         ("create", os.path.join(os.path.dirname(sys.argv[1]), "new"), "w")):
    try:
        open(path, mode).write("pwned\\n")
        print(what, "ok", flush=True)
    except OSError as exc:
        print(what, exc.strerror, flush=True)
"""
