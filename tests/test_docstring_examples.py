"""Every ```python example in a public docstring of tfllm runs (the `>>>` ones run through --doctest-modules)."""

import importlib
import inspect
import pkgutil
import re

import pytest

import tfllm

FENCED = re.compile(r"```python\n(.*?)```", flags=re.DOTALL)


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
