"""Examples of using the platform from outside: `examples.toy_space:SPEC` is a plug-in space."""
