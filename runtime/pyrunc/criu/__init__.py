"""Checkpoint and restore through criu (https://criu.org), imported only by the `checkpoint`,
`restore` and `check` commands: binary.py finds and checks criu, options.py builds what criu
is told about a container, dump.py and restore.py run it, and actions.py runs a config's
hooks during a restore, in the script criu runs (action-script)."""
