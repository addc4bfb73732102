"""A scriptable stand-in for a CNI plugin binary (tests install it under several type names).

Its behaviour comes from its own plugin config, which the runtime passes
through unchanged:

* ``fakeLog``: file to append one JSON line per call to (command, CNI_* env, stdin config);
* ``fakeAdd`` / ``fakeDel``: ``ok`` (default), ``fail`` (spec error object, code
  ``fakeCode``, exit 1), ``crash`` (text on stderr, exit 2), ``hang`` (spawns a child
  and sleeps; the child's pid goes to ``fakePidFile``), ``garbage`` (non-JSON stdout);
* ``fakeSleep``: seconds to wait before doing anything else (after logging the call);
* ``fakeIP``: address this plugin adds to the result on ADD (on interface ``CNI_IFNAME``).

On ADD it passes ``prevResult`` through (adding its interface/IP if ``fakeIP`` is set), so
chains behave like real ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main() -> int:
    conf = json.load(sys.stdin)
    command = os.environ.get("CNI_COMMAND", "")
    env = {k: v for k, v in os.environ.items() if k.startswith("CNI_")}
    if conf.get("fakeLog"):
        with open(conf["fakeLog"], "a") as f:
            f.write(json.dumps({"plugin": os.path.basename(sys.argv[0]), "command": command,
                                "env": env, "conf": conf}) + "\n")
    if command == "VERSION":
        print(json.dumps({"cniVersion": conf.get("cniVersion", "1.0.0"),
                          "supportedVersions": ["0.3.1", "0.4.0", "1.0.0"]}))
        return 0
    time.sleep(float(conf.get("fakeSleep", 0)))
    mode = conf.get("fakeAdd" if command == "ADD" else "fakeDel", "ok")
    if mode == "fail":
        print(json.dumps({"cniVersion": conf.get("cniVersion"), "code": conf.get("fakeCode", 7),
                          "msg": conf.get("fakeMsg", "fake failure"), "details": "asked to fail"}))
        return 1
    if mode == "crash":
        sys.stderr.write("panic: something broke\n")
        return 2
    if mode == "garbage":
        print("this is not json")
        return 0
    if mode == "hang":
        child = subprocess.Popen(["sleep", "300"])
        if conf.get("fakePidFile"):
            with open(conf["fakePidFile"], "w") as f:
                f.write(f"{os.getpid()} {child.pid}\n")
        time.sleep(300)
        return 0
    if command != "ADD":
        return 0
    result = conf.get("prevResult") or {"cniVersion": conf["cniVersion"], "interfaces": [], "ips": []}
    result["cniVersion"] = conf["cniVersion"]
    if conf.get("fakeIP"):
        interfaces = result.setdefault("interfaces", [])
        interfaces.append({"name": env["CNI_IFNAME"], "mac": "02:00:00:00:00:01",
                           "sandbox": env.get("CNI_NETNS", "")})
        entry = {"address": conf["fakeIP"], "interface": len(interfaces) - 1}
        if conf["cniVersion"] in ("0.3.0", "0.3.1", "0.4.0"):
            entry["version"] = "6" if ":" in conf["fakeIP"] else "4"
        result.setdefault("ips", []).append(entry)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
