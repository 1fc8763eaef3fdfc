"""Code environments: the model writes Python, the sandboxed code verifier runs the tests."""
