"""The one rich console class: whatever a renderable holds, no control byte of its text
reaches the terminal. Imported only by the commands that draw with rich."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.segment import Segment

from gastown.safetext import visible


class SafeConsole(Console):
    """A ``rich.console.Console`` that shows every control character of the text it
    renders as an escape, then adds its own styling (colours, cursor moves for ``Live``).

    Text is sanitized per segment, after layout and before styling, so a title carrying
    ``ESC ] 0;…`` can neither reach the terminal nor be confused with rich's own codes.
    """

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(visible(segment.text, multiline=True), segment.style)
            for segment in buffer
        )
