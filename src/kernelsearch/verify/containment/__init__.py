"""The walls around a candidate's process, which hold whatever its code does: the OS sandbox (sandbox.py:
bubblewrap, a scrubbed environment, resource limits, no network), the PID namespace a worker shares with its answer
keeper alone (namespaces.py), and the run-time wall inside the worker (audit.py: a PEP 578 audit hook, its rules in
audit_rules.py, the toolchain it lets run in audit_processes.py, how it reads an event's values in
audit_values.py)."""
