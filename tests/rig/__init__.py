"""The project's test rig: private containerd, local registry, OCI image builder, leak check.

Every rig object is a plain class usable outside pytest (``with PrivateContainerd() as c: ...``);
``tests/conftest.py`` wraps them in fixtures. All files, sockets and mounts a rig object makes
live under one per-session directory (:func:`tests.rig.paths.session_dir`), which is what lets
the leak check tell this session's leftovers from anything else running on the machine.
"""
