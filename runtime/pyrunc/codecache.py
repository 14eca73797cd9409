"""All of pyrunc's bytecode in one file, read with one open() by the launcher.

Importing a module the usual way costs a walk of sys.path, a stat, an open and a
read of its .pyc: ~50 us each, a few milliseconds over the 40-60 modules a command
imports, on a budget where runc's whole `exec` takes ~15 ms. The launcher that
hack/setup.sh writes installs this finder first on sys.meta_path; it serves each
module from the cache while its source still has the size and mtime recorded at
build time, and otherwise leaves it to the normal import system.

Besides pyrunc, the cache covers the few standard-library and extension modules
that commands import (STDLIB): with every import served from here or built into
the interpreter, the path finder is never set up, which costs ~0.5 ms by itself
(listing sys.path directories). Extension modules are recorded by path.

Only builtin modules are used here: this runs before anything else is imported.
"""
import marshal
import posix
import sys

# The modules outside pyrunc that its commands import; a name missing here is only
# slower to import. Packages' parents come first.
STDLIB = ("__future__", "struct", "_json", "resource", "termios", "select", "fcntl",
          "encodings.unicode_escape", "_cffi_backend")

# name -> (path, is package, mtime_ns, size, marshalled code or None for an extension module)
Entry = tuple


class CodeCache:
    def __init__(self, entries: dict[str, Entry]) -> None:
        self.entries = entries

    def find_spec(self, name: str, path=None, target=None):
        entry = self.entries.get(name)
        if entry is None:
            return None
        origin, is_pkg, mtime_ns, size = entry[:4]
        try:
            st = posix.stat(origin)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None  # edited since the cache was built: the source wins
        if entry[4] is None:
            loader = sys.modules["_frozen_importlib_external"].ExtensionFileLoader(name, origin)
            return sys.modules["_frozen_importlib"].ModuleSpec(name, loader, origin=origin)
        spec = sys.modules["_frozen_importlib"].ModuleSpec(name, self, origin=origin, is_package=is_pkg)
        if is_pkg:
            spec.submodule_search_locations = [origin.rpartition("/")[0]]
        spec.has_location = True
        return spec

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module) -> None:
        exec(marshal.loads(self.entries[module.__name__][4]), module.__dict__)


def install(path: str) -> None:
    """Serve imports from the cache at ``path``; without one, imports work as usual."""
    try:
        with open(path, "rb") as f:
            entries = marshal.loads(f.read())
    except OSError:
        return
    sys.meta_path.insert(0, CodeCache(entries))


def build(package_dir: str, path: str) -> int:
    """Compile every module under ``package_dir``, and STDLIB, into the cache at ``path``; return the count."""
    import importlib.machinery
    import importlib.util
    import os

    top = os.path.dirname(os.path.abspath(package_dir))
    found: dict[str, tuple[str, bool]] = {}
    for dirpath, dirnames, filenames in os.walk(os.path.abspath(package_dir)):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for fn in filenames:
            src = os.path.join(dirpath, fn)
            name = os.path.relpath(src, top).replace(os.sep, ".")
            suffix = next((x for x in (".py", *importlib.machinery.EXTENSION_SUFFIXES) if fn.endswith(x)), None)
            if suffix is None:
                continue
            name = name[:-len(suffix)]
            if fn == "__init__.py":
                name = name.rpartition(".")[0]
            found[name] = (src, fn == "__init__.py")
    for name in STDLIB:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and spec.has_location:  # not builtin in this interpreter
            found[name] = (spec.origin, spec.submodule_search_locations is not None)
    entries: dict[str, Entry] = {}
    for name, (src, is_pkg) in found.items():
        st = os.stat(src)
        code = None
        if src.endswith(".py"):
            with open(src, "rb") as f:
                code = marshal.dumps(compile(f.read(), src, "exec", dont_inherit=True))
        entries[name] = (src, is_pkg, st.st_mtime_ns, st.st_size, code)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(marshal.dumps(entries))
    os.replace(tmp, path)
    return len(entries)


if __name__ == "__main__":
    print(f"codecache: {build(sys.argv[1], sys.argv[2])} modules in {sys.argv[2]}")
