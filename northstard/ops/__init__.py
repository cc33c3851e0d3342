"""The operator's side: the command line, ``tail``, ``sources check``,
logging set-up and the generated configuration reference."""
