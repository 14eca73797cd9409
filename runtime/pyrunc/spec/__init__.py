"""Spec handling: load, validate and convert config.json. Pure: never touches the kernel."""
