"""Every public class and function of tfllm's subpackages has a runnable example, and every ```python example in a
public docstring of tfllm runs (the `>>>` ones run through --doctest-modules)."""

import importlib
import inspect
import pkgutil
import re

import pytest

import tfllm

FENCED = re.compile(r"```python\n(.*?)```", flags=re.DOTALL)
PACKAGES = ("checkpoints", "data", "evaluation", "export", "generation", "layers", "models", "tokenizers", "training")


def _public_objects_with_examples():
    for module_info in pkgutil.walk_packages(tfllm.__path__, prefix="tfllm."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
                continue
            for index, block in enumerate(FENCED.findall(inspect.getdoc(value) or "")):
                yield pytest.param(module, inspect.cleandoc(block), id=f"{module.__name__}.{name}[{index}]")


@pytest.mark.parametrize("module, example", list(_public_objects_with_examples()))
def test_docstring_example_runs(module, example):
    exec(compile(example, module.__file__, "exec"), dict(vars(module)))


def _exported_classes_and_functions():
    """`(qualified name, object)` of every class and function a subpackage exports: its public names defined in
    tfllm (`dir` and `getattr`, so that names a package loads on first use count too)."""
    for package_name in PACKAGES:
        package = importlib.import_module(f"tfllm.{package_name}")
        for name in dir(package):
            value = getattr(package, name)
            if name.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            if (getattr(value, "__module__", None) or "").startswith("tfllm"):
                yield f"tfllm.{package_name}.{name}", value


def test_every_exported_class_and_function_has_an_example():
    exported = dict(_exported_classes_and_functions())
    assert {"tfllm.layers.LSTM", "tfllm.models.CausalLM", "tfllm.training.pretrain"} <= set(exported)
    missing = [
        name for name, value in exported.items()
        if not any(marker in (inspect.getdoc(value) or "") for marker in (">>>", "```python"))
    ]
    assert not missing, f"no runnable example (>>> or ```python) in the docstring of: {', '.join(missing)}"
