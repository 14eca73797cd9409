"""All of pyrunc's bytecode in one file, opened once by the launcher.

Importing a module the usual way costs a walk of sys.path, a stat, an open and a
read of its .pyc: ~50 us each, a few milliseconds over the 20-80 modules a command
imports, on a budget where runc's whole `exec` takes ~15 ms. The launcher that
hack/setup.sh writes installs this cache as builtins.__import__ (and as the first
finder on sys.meta_path, for importlib's own callers); it serves each module from the
cache while its source still has the size and mtime recorded at build time, and
otherwise leaves it to the normal import system. The code is compiled without
docstrings (optimize=2) and without line tables: nothing reads them at run time but a
traceback, and tracebacks are printed with --debug only, which bypasses the cache.

The file is an index followed by each module's marshalled code: a command reads
the index and then, with one pread each, only the modules it imports (`state`
needs a fifth of the ~700 KB that `run` does). The fd stays open, close-on-exec,
so the index always matches the bytes even if setup.sh replaces the file.

Besides pyrunc, the cache covers the few standard-library and extension modules
that commands import (STDLIB), so the path finder is not consulted for them.
Extension modules are recorded by path.

Only builtin modules are used here: this runs before anything else is imported.
"""
import builtins
import _thread
import marshal
import posix
import sys

# The modules outside pyrunc that its commands import; a name missing here is only
# slower to import. Packages' parents come first.
STDLIB = ("__future__", "struct", "_json", "resource", "termios", "select", "fcntl")
_HEADER = 8  # little-endian length of the marshalled index that follows

_standard = builtins.__import__
_modules = sys.modules
_ModuleType = type(sys)

# name -> (path, is package, mtime_ns, size, offset of the code or -1 for an extension module, length)
Entry = tuple


class CodeCache:
    """The meta-path finder (for importlib's callers) and the fast ``__import__``."""

    def __init__(self, fd: int, entries: dict[str, Entry]) -> None:
        self.fd, self.entries = fd, entries
        self.lock = _thread.RLock()  # the terminal relay's threads may import too
        self.loading: set[str] = set()  # being executed: another thread waits for it

    def _fresh(self, name: str) -> Entry | None:
        """The module's entry if the cache holds it for the source as it is now."""
        entry = self.entries.get(name)
        if entry is None:
            return None
        try:
            st = posix.stat(entry[0])
        except OSError:
            return None
        if st.st_mtime_ns != entry[2] or st.st_size != entry[3]:
            return None  # edited since the cache was built: the source wins
        return entry

    def _code(self, name: str):
        """The module's code (None: not cached, stale or an extension module)."""
        entry = self._fresh(name)
        if entry is None or entry[4] < 0:
            return None
        return marshal.loads(posix.pread(self.fd, entry[5], entry[4]))

    def import_(self, name: str, globals=None, locals=None, fromlist=(), level: int = 0):
        """builtins.__import__ for the modules in the cache; the others, and anything
        unusual, go to the standard one. A cached module is made the way importlib makes
        one, without its per-module locks, spec objects and .pyc path computations
        (~30 us a module, on ~60 modules for `run`)."""
        if level:
            package = globals.get("__package__") if globals else None
            if not package:
                return _standard(name, globals, locals, fromlist, level)
            base = package.rsplit(".", level - 1)[0]
            name = f"{base}.{name}" if name else base
        module = _modules.get(name)
        if module is None or name in self.loading:
            module = self._load(name)
        if module is None:
            return _standard(name, globals, locals, fromlist, 0)
        if not fromlist:
            return _modules[name.partition(".")[0]] if not level else module
        if hasattr(module, "__path__"):  # from a package: its submodules
            for sub in fromlist:
                if sub != "*" and not hasattr(module, sub) and self._load(f"{name}.{sub}") is None:
                    try:
                        _standard(f"{name}.{sub}")
                    except ModuleNotFoundError as exc:  # not a submodule: the import names the error
                        if exc.name != f"{name}.{sub}":
                            raise
        return module

    def _load(self, name: str):
        """Import ``name`` (parents first) from the cache; None if it does not hold it."""
        with self.lock:
            if name in _modules:
                return _modules[name]
            code = self._code(name)
            if code is None:
                return None
            parent, _, child = name.rpartition(".")
            if parent and parent not in _modules and self._load(parent) is None:
                _standard(parent)
            origin, is_pkg = self.entries[name][:2]
            module = _ModuleType(name)
            module.__file__, module.__loader__ = origin, self
            module.__package__ = name if is_pkg else parent
            if is_pkg:
                module.__path__ = [origin.rpartition("/")[0]]
            _modules[name] = module
            self.loading.add(name)
            try:
                exec(code, module.__dict__)
            except BaseException:
                del _modules[name]
                raise
            finally:
                self.loading.discard(name)
            module = _modules[name]  # as importlib does: a module may replace itself
            if parent:
                setattr(_modules[parent], child, module)
            return module

    def find_spec(self, name: str, path=None, target=None):
        entry = self._fresh(name)
        if entry is None:
            return None
        origin, is_pkg, offset = entry[0], entry[1], entry[4]
        if offset < 0:
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
        exec(self._code(module.__name__), module.__dict__)


def install(path: str) -> None:
    """Serve imports from the cache at ``path``; without one, imports work as usual. So they
    do with --debug on the command line: its tracebacks need the line numbers that the
    cache's code leaves out (_without_lines)."""
    if "--debug" in sys.argv:
        return
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return
    try:
        size = int.from_bytes(posix.pread(fd, _HEADER, 0), "little")
        entries = marshal.loads(posix.pread(fd, size, _HEADER))
    except (OSError, ValueError, EOFError, TypeError):
        entries = None
    if not isinstance(entries, dict):  # truncated or not ours
        posix.close(fd)
        return
    cache = CodeCache(fd, entries)
    sys.meta_path.insert(0, cache)
    builtins.__import__ = cache.import_


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
    codes: dict[str, bytes] = {}
    for name, (src, _) in found.items():
        if src.endswith(".py"):
            with open(src, "rb") as f:
                # optimize=2: without docstrings (none is read at run time), a tenth less to unmarshal
                codes[name] = marshal.dumps(_without_lines(compile(f.read(), src, "exec", dont_inherit=True,
                                                                   optimize=2)))
    stats = {name: os.stat(src) for name, (src, _) in found.items()}
    base = _HEADER  # where the blobs start: after the index, whose length depends on the offsets in it
    while True:
        entries: dict[str, Entry] = {}
        offset = base
        for name, (src, is_pkg) in found.items():
            code = codes.get(name)
            entries[name] = (src, is_pkg, stats[name].st_mtime_ns, stats[name].st_size,
                             -1 if code is None else offset, len(code or b""))
            offset += len(code or b"")
        index = marshal.dumps(entries)
        if _HEADER + len(index) == base:
            break
        base = _HEADER + len(index)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(len(index).to_bytes(_HEADER, "little"))
        f.write(index)
        for name in found:
            f.write(codes.get(name, b""))
    os.replace(tmp, path)
    return len(entries)


def _without_lines(code):
    """``code`` and the code objects within it without their line tables: a quarter less to
    read and unmarshal. Only tracebacks would show line numbers, and they are printed with
    --debug alone, which install() leaves to the usual imports (the .pyc files have them)."""
    consts = tuple(_without_lines(c) if isinstance(c, type(code)) else c for c in code.co_consts)
    return code.replace(co_linetable=b"", co_consts=consts)


if __name__ == "__main__":
    print(f"codecache: {build(sys.argv[1], sys.argv[2])} modules in {sys.argv[2]}")
