"""Tool-use environments: the model calls tools in a multi-turn loop (``rlenv.tools.ToolEnv``)."""
