"""Imports point one way (DESIGN.md): no circle between tfllm's modules, and each package imports only the packages
below it. Every `import` and `from ... import` counts, those inside functions too, read from the source with `ast`."""

import ast
import pathlib

import tfllm

ROOT = pathlib.Path(tfllm.__file__).parent

# What each part of tfllm may import besides itself. `checks`, `choices`, `defaults` and `utf8` are root-level modules
# that import nothing of tfllm, so every package may use them; the root package `tfllm` (its `__version__`) is open to
# all.
BASE = {"checks", "choices", "defaults", "utf8", "tfllm"}
ALLOWED = {
    "checks": set(),
    "choices": set(),
    "defaults": set(),
    "utf8": set(),
    "xla_flags": set(),  # the `tfllm` command's XLA setting, made before TensorFlow loads
    "tfllm": set(),
    "layers": BASE,
    "tokenizers": BASE,
    "data": BASE | {"tokenizers"},
    "generation": BASE,  # sees a model by its decode contract and its tokenizer's methods, never their classes
    # The same: scoring asks the model's decode contract; the chat memory asks generation's chat check.
    "evaluation": BASE | {"data", "tokenizers", "generation"},
    # Reads GPT-2 checkpoint files into named arrays and the tokenizer's files; `TransformerLM.from_pretrained` builds.
    "checkpoints": BASE | {"tokenizers"},
    # `data` too: the `PromptTemplate` a model saves with it lives there (and `data` imports only tokenizers).
    "models": BASE | {"layers", "tokenizers", "data", "generation", "evaluation", "checkpoints"},
    "training": BASE | {"models", "data", "evaluation", "generation", "tokenizers", "checkpoints"},
    "export": BASE | {"models", "tokenizers", "generation", "evaluation"},
    "cli": BASE | {"xla_flags", "layers", "tokenizers", "data", "generation", "evaluation", "models", "training",
                   "export", "checkpoints"},
}

def module_files(root):
    """`{module name: file}` of every module under the package directory `root` (a package is its `__init__`)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_edges(root):
    """Every import between modules under `root`: `(importer, imported, "file:line `statement`")` triples.

    `from package import name` points at the module `package.name` when there is one, else at `package` (whose
    `__init__` runs). Imports of anything outside `root` are left out.
    """
    modules = module_files(root)
    edges = []
    for importer, path in modules.items():
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source, filename=str(path))):  # every node: function-level imports too
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importer's package up `level - 1` packages
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            statement = ast.get_source_segment(source, node).splitlines()
            statement = statement[0] + (" ...)" if len(statement) > 1 else "")
            where = f"{path.relative_to(root.parent)}:{node.lineno} `{statement}`"
            for target in dict.fromkeys(targets):
                # `import a.b.c` runs the modules a, a.b and a.b.c; the nearest one under `root` is the import.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != importer:
                    edges.append((importer, target, where))
    return edges


def import_cycles(edges):
    """The import circles among `edges`: for each group of modules that import each other (a strongly connected
    component), one circle through them, as the list of its imports ("file:line `statement`")."""
    graph = {}
    for importer, imported, where in edges:
        graph.setdefault(importer, {}).setdefault(imported, where)
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(node):  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, {}):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while not component or member != node:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [(component, _circle(graph, component)) for component in components]


def _circle(graph, component):
    """One circle through the first module of `component`, by a breadth-first search inside it."""
    start = min(component)
    paths = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for successor, where in sorted(graph.get(node, {}).items()):
            if successor == start:
                return [*paths[node], where]
            if successor in component and successor not in paths:
                paths[successor] = [*paths[node], where]
                queue.append(successor)
    raise AssertionError(f"no circle through {start}")  # cannot happen in a strongly connected component


def layering_violations(edges, allowed):
    """The imports that break `allowed` (part -> the parts it may import), one line each."""
    violations = []
    for importer, imported, where in edges:
        part, target = _part(importer), _part(imported)
        if part != target and target not in allowed[part]:
            others = ", ".join(sorted(allowed[part] - {"tfllm"})) or "nothing of tfllm"
            violations.append(f"{where}: tfllm.{part} imports tfllm.{target}; it may import only {others}")
    return violations


def _part(module):
    """The part of tfllm a module belongs to: its subpackage or root-level module (`tfllm` for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_part_of_tfllm_has_a_rule():
    assert {_part(module) for module in module_files(ROOT)} <= set(ALLOWED)


def test_no_import_cycle():
    cycles = import_cycles(import_edges(ROOT))
    assert not cycles, "import circles (each line imports the next module):\n" + "\n\n".join(
        "\n".join(circle) for _, circle in cycles
    )


def test_each_package_imports_only_the_packages_below_it():
    violations = layering_violations(import_edges(ROOT), ALLOWED)
    assert not violations, "imports against the layering of DESIGN.md:\n" + "\n".join(violations)


def test_the_checks_find_a_function_level_circle_and_a_forbidden_import(tmp_path):
    package = tmp_path / "tfllm"
    for name, text in {
        "__init__.py": "",
        "checks.py": "",
        "models/__init__.py": "from tfllm.models.a import A\n",
        "models/a.py": "A = 1\n\ndef f():\n    from tfllm.models import b\n",
        "models/b.py": "from . import a\nfrom tfllm.checks import x\n",
        "layers/__init__.py": "def g():\n    import tfllm.models.a\n",
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    edges = import_edges(package)
    [(component, circle)] = import_cycles(edges)
    assert component == {"tfllm.models.a", "tfllm.models.b"}
    assert circle == ["tfllm/models/a.py:4 `from tfllm.models import b`", "tfllm/models/b.py:1 `from . import a`"]
    assert layering_violations(edges, {"layers": {"checks"}, "models": {"checks"}, "tfllm": set(),
                                       "checks": set()}) == [
        "tfllm/layers/__init__.py:2 `import tfllm.models.a`: tfllm.layers imports tfllm.models; it may import only "
        "checks"
    ]
