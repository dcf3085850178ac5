"""nasmr's Dagster code location (``defs`` in ``pipelines.definitions``) and the ``nasmr``
command that runs it (``pipelines.cli``)."""
