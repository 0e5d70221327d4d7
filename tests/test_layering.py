"""The package layering: every `lightvid.X` package imports only itself and lower layers, the packages import each
other without cycles, and no package imports another package's private (`_name`) module or name.

Every import of every module under lightvid/ counts, including those inside functions (lazy imports are still
dependencies) and relative ones (resolved against the importing module's package)."""
import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent / "lightvid"

# Low to high. "errors" also holds the top-level lightvid/__init__.py. Packages that do not exist yet may be listed.
LAYERS = ["errors", "weights", "io", "tasks", "conditioning", "diffusion", "models", "data", "pipelines", "train",
          "edit", "eval", "compress", "export", "cli"]
RANK = {name: i for i, name in enumerate(LAYERS)}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """The top package of a dotted `lightvid...` module name: `lightvid.a.b` -> `a`; `lightvid` itself -> errors."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "errors"


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str, str | None]]:
    """Every import of a `lightvid` module in the file: (line, the module imported, the name taken from it or
    None). `from lightvid.a import b` gives the module `lightvid.a.b` when b is a submodule, else (`lightvid.a`, b)."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: `from .x import y` in package p is `from p.x import y`
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                as_module = (root.parent / sub.replace(".", "/")).with_suffix(".py").exists() or \
                    (root.parent / sub.replace(".", "/") / "__init__.py").exists()
                found.append((node.lineno, sub, None) if as_module else (node.lineno, target, alias.name))
    return [(line, target, name) for line, target, name in found
            if target == "lightvid" or target.startswith("lightvid.")]


def edges(root: Path = ROOT) -> list[tuple[str, str, str]]:
    """(importing package, imported package, "file:line imports what") for every import between packages."""
    out = []
    for path in sorted(root.rglob("*.py")):
        here = package_of(module_name(path, root))
        for line, target, name in imports(path, root):
            what = f"{target}.{name}" if name else target
            out.append((here, package_of(target), f"{path.relative_to(root.parent)}:{line} imports {what}"))
    return out


def upward_imports(root: Path = ROOT) -> list[str]:
    bad = []
    for here, there, where in edges(root):
        for package in {here, there} - RANK.keys():
            bad.append(f"{where}: package {package!r} has no layer (add it to LAYERS)")
        if here != there and RANK.get(there, -1) > RANK.get(here, len(RANK)):
            bad.append(f"{where}: {here} (layer {RANK[here]}) imports {there} (layer {RANK[there]}), a higher layer")
    return bad


def package_cycles(root: Path = ROOT) -> list[str]:
    """Each set of packages that import one another in a cycle (a strongly connected component), with its imports."""
    graph: dict[str, dict[str, str]] = {}
    for here, there, where in edges(root):
        if here != there:
            graph.setdefault(here, {}).setdefault(there, where)
            graph.setdefault(there, {})
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [f"cycle between {', '.join(sorted(c))}:\n  " + "\n  ".join(
        where for here in sorted(c) for there, where in sorted(graph[here].items()) if there in c)
        for c in components]


def private_imports(root: Path = ROOT) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        here = package_of(module_name(path, root))
        for line, target, name in imports(path, root):
            if package_of(target) != here and (any(map(is_private, target.split("."))) or (name and is_private(name))):
                bad.append(f"{path.relative_to(root.parent)}:{line} imports {target}{'.' + name if name else ''}, "
                           f"private to {package_of(target)}")
    return bad


def test_the_checker_reads_every_kind_of_import(tmp_path):
    """The scanner on a made-up tree: relative, lazy (in a function) and private imports are all seen."""
    root = tmp_path / "lightvid"
    for folder in ("io", "models", "cli", "misc"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "errors.py").write_text("")
    (root / "io" / "_impl.py").write_text("from .. import errors\n")
    (root / "io" / "video.py").write_text("def f():\n    from lightvid.models import net\n")  # lazy, upward
    (root / "models" / "net.py").write_text("from ..io._impl import x\nfrom lightvid.io.video import _y\n"
                                            "import lightvid.io\n")
    (root / "cli" / "__init__.py").write_text("from .. import io\nfrom lightvid import __version__\n")
    (root / "misc" / "__init__.py").write_text("import lightvid.errors\n")  # a package missing from LAYERS
    assert imports(root / "io" / "_impl.py", root) == [(1, "lightvid.errors", None)]
    assert imports(root / "cli" / "__init__.py", root) == [(1, "lightvid.io", None), (2, "lightvid", "__version__")]
    assert sorted((here, there) for here, there, _ in edges(root)) == [
        ("cli", "errors"), ("cli", "io"), ("io", "errors"), ("io", "models"), ("misc", "errors"),
        ("models", "io"), ("models", "io"), ("models", "io")]
    assert upward_imports(root) == ["lightvid/io/video.py:2 imports lightvid.models.net: io (layer 2) imports models "
                                    "(layer 6), a higher layer", "lightvid/misc/__init__.py:1 imports lightvid.errors: "
                                    "package 'misc' has no layer (add it to LAYERS)"]
    assert package_cycles(root) == ["cycle between io, models:\n  lightvid/io/video.py:2 imports lightvid.models.net"
                                    "\n  lightvid/models/net.py:1 imports lightvid.io._impl.x"]
    assert private_imports(root) == ["lightvid/models/net.py:1 imports lightvid.io._impl.x, private to io",
                                     "lightvid/models/net.py:2 imports lightvid.io.video._y, private to io"]


def test_packages_import_only_themselves_and_lower_layers():
    bad = upward_imports()
    assert not bad, f"{len(bad)} imports from a higher layer ({' < '.join(LAYERS)}):\n" + "\n".join(bad)


def test_packages_import_each_other_without_cycles():
    bad = package_cycles()
    assert not bad, "import cycles between packages:\n" + "\n".join(bad)


def test_no_package_imports_another_packages_private_names():
    bad = private_imports()
    assert not bad, f"{len(bad)} imports of another package's private module or name:\n" + "\n".join(bad)
