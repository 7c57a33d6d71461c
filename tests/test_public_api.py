from __future__ import annotations

import inspect

import aioplug
import aioplug.errors
import aioplug.plugin


def test_every_public_name_is_exported_once_and_exists() -> None:
    for module in (aioplug, aioplug.plugin, aioplug.errors):
        names = module.__all__
        assert len(names) == len(set(names)), module.__name__
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_public_classes_and_functions_have_docstrings() -> None:
    for module in (aioplug, aioplug.plugin):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__ and obj.__doc__.strip(), f"{module.__name__}.{name}"


def test_every_error_is_in_the_one_tree_and_its_docstring() -> None:
    tree = aioplug.errors.__doc__ or ""
    for name in aioplug.errors.__all__:
        error = getattr(aioplug.errors, name)
        assert issubclass(error, aioplug.AioplugError)
        assert name in tree, f"{name} missing from the tree in aioplug/errors.py"


def test_package_is_typed() -> None:
    import importlib.resources

    assert importlib.resources.files("aioplug").joinpath("py.typed").is_file()


def test_importing_starts_no_threads() -> None:
    import subprocess
    import sys

    code = (
        "import threading, aioplug, aioplug.plugin, aioplug_template; "
        "print(threading.active_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
