"""The Refocus worker: a process that runs core for the Blender add-on, one request at a time.

Blender's own Python has no torch, and a refocus must never freeze its interface, so the add-on
starts ``python -m core.worker`` and talks to it over stdin/stdout, one JSON object per line.
Pixels never travel through the pipe: inputs are EXR files (what the compositor itself wrote),
results are ``.npy`` files, both in a folder the add-on owns.

Modules, none importing another that imports it back:

* :mod:`.protocol`: the messages, the version, a :class:`~.protocol.Job` (one request being
  served) and how its files are read and written;
* :mod:`.ops`: one module per op and the registry that finds them; each op is its
  capability's pipeline (:mod:`core.pipelines`) between the job's files;
* :mod:`.server`: reads requests, validates them against the op specs, runs them on a
  compute thread, answers.

Protocol (version :data:`core.contract.PROTOCOL_VERSION`): see :mod:`.protocol`.
"""
