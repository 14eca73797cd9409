"""Spec handling: load, validate and convert config.json. Pure: never touches the kernel."""

# config.md "POSIX-platform Hooks", in lifecycle order
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
