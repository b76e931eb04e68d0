"""Components by name: each page registers its elements as ``"page.element"`` and every event
handler names what it reads and what it updates (as LLaMA-Factory's LlamaBoard ``Manager`` does).

Handlers return ``{component: update}`` dicts: Gradio leaves every output the dict does not name
as it is, so nothing counts positions and nothing pads with ``gr.skip()``. (An empty dict is not
"nothing" to Gradio: a handler that changes nothing returns ``gr.skip()``.)
"""

from __future__ import annotations

from typing import Any

from gradio.blocks import Block


class Manager:
    def __init__(self) -> None:
        self._elems: dict[str, Block] = {}

    def add(self, page: str, elems: dict[str, Block]) -> None:
        for name, elem in elems.items():
            key = f"{page}.{name}"
            if key in self._elems:
                raise KeyError(f"{key} is registered twice")
            self._elems[key] = elem

    def __getitem__(self, name: str) -> Any:
        try:
            return self._elems[name]
        except KeyError:
            raise KeyError(f"no component {name!r}; registered: {', '.join(self._elems)}") from None

    def list(self, *names: str) -> list[Any]:
        """The components named (for ``inputs=`` / ``outputs=``)."""
        return [self[n] for n in names]

    def page(self, page: str) -> dict[str, Any]:
        """A page's components by their short name."""
        prefix = f"{page}."
        return {k.removeprefix(prefix): v for k, v in self._elems.items() if k.startswith(prefix)}

    def named(self, short: str) -> dict[str, Any]:
        """Each page's component with this short name, by page (e.g. every page's ``timer``)."""
        return {k.rsplit(".", 1)[0]: v for k, v in self._elems.items() if k.rsplit(".", 1)[-1] == short}


def merge(*updates: dict[Any, Any]) -> dict[Any, Any]:
    """Several handlers' update dicts as one; two updates of the same component are combined
    (``{"choices": …}`` then ``{"value": …}`` gives both), a plain value replaces."""
    out: dict[Any, Any] = {}
    for upd in updates:
        for comp, value in upd.items():
            old = out.get(comp)
            out[comp] = {**old, **value} if _is_update(old) and _is_update(value) else value
    return out


def _is_update(value: Any) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update"
