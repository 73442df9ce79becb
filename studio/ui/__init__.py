"""The Gradio user interface: one module per tab. The only package that imports gradio."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


class _NoStubWriting(importlib.abc.MetaPathFinder):
    """Gradio's component metaclass re-derives each component's `.pyi` type stub from its source, and writes it into
    site-packages when it differs, on every import: a tool for writing custom components, and 2.6-3.6 s of each app
    start on a 2-core EPYC (importing gradio 4.9-6.0 s with it, 2.3-2.5 s without). The studio defines no
    components, so once gradio.component_meta has run, its stub writer does nothing."""

    def find_spec(self, name, path, target=None):
        if name != "gradio.component_meta":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.create_or_modify_pyi = lambda *args, **kwargs: None

        spec.loader.exec_module = exec_module
        return spec


if "gradio.component_meta" not in sys.modules:  # imported first by someone else: nothing left to save
    sys.meta_path.insert(0, _NoStubWriting())
