"""displaCy renderings of a pipeline's predictions, as markup and (for ``dep``) as PNG images.

displaCy renders ``dep`` as SVG and ``ent`` / ``span`` as HTML. SVG becomes a PNG without a
browser through ``resvg-py`` (a self-contained wheel: ``pip install track-spacy[images]``), or
``cairosvg`` where it and the system's cairo are installed. HTML needs a browser to become an image,
so ``ent`` and ``span`` renderings are tracked as markup only.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from spacy import displacy
from spacy.tokens import Doc, DocBin

if TYPE_CHECKING:
    from spacy.language import Language

#: aim-spacy's ``experiment_type`` values and the displaCy style each means.
STYLE_ALIASES = {"dep": "dep", "ent": "ent", "ner": "ent", "span": "span", "spancat": "span"}

#: displaCy asks for Arial, which Linux machines rarely have; fall back to any sans-serif font.
_FONT_FALLBACK = "svg, text, tspan, textPath { font-family: Arial, 'DejaVu Sans', sans-serif; }"

_SIZE = re.compile(r"^\s*(\d+)\s*[,x]\s*(\d+)\s*$")

SvgToPng = Callable[[str], bytes]


def parse_styles(experiment_type: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"ent"``, ``"ner"``, ``"dep,ent"`` or ``["dep", "ent"]`` as displaCy styles, in order."""
    if experiment_type is None:
        return ()
    items = experiment_type.split(",") if isinstance(experiment_type, str) else experiment_type
    styles: list[str] = []
    for item in items:
        key = str(item).strip().lower()
        if not key:
            continue
        if key not in STYLE_ALIASES:
            raise ValueError(
                f"unknown experiment_type {item!r}: use 'dep', 'ent' (or 'ner') or 'span', "
                "or several separated by commas"
            )
        if STYLE_ALIASES[key] not in styles:
            styles.append(STYLE_ALIASES[key])
    return tuple(styles)


def infer_styles(nlp: Language) -> tuple[str, ...]:
    """The styles that a pipeline's components predict (used when ``experiment_type`` is unset)."""
    factories = set(nlp.pipe_factories.values())
    styles: list[str] = []
    if factories & {"parser", "beam_parser"}:
        styles.append("dep")
    if factories & {"ner", "beam_ner", "entity_ruler", "span_ruler"}:
        styles.append("ent")
    if factories & {"spancat", "spancat_singlelabel"}:
        styles.append("span")
    return tuple(styles)


def parse_image_size(image_size: str | Sequence[int] | None) -> tuple[int, int] | None:
    """aim-spacy's ``"height,width"`` (or ``[height, width]``) as ``(width, height)``."""
    if image_size is None:
        return None
    if isinstance(image_size, str):
        match = _SIZE.match(image_size)
        if match is None:
            raise ValueError(
                f"image_size must be 'height,width' such as '600,1200', got {image_size!r}"
            )
        height, width = int(match.group(1)), int(match.group(2))
    else:
        values = list(image_size)
        if len(values) != 2:
            raise ValueError(f"image_size must be [height, width], got {image_size!r}")
        height, width = int(values[0]), int(values[1])
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return width, height


def load_docs(nlp: Language, path: str, limit: int | None) -> list[Doc]:
    """The reference docs of a ``.spacy`` file (at most ``limit``)."""
    docs: list[Doc] = []
    for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
        if limit is not None and len(docs) >= limit:
            break
        docs.append(doc)
    return docs


def predict(nlp: Language, docs: Iterable[Doc]) -> list[Doc]:
    """Run the pipeline over the reference docs' tokens (not their annotations)."""
    inputs = [
        Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
        for doc in docs
    ]
    return list(nlp.pipe(inputs))


def render(doc: Doc, style: str, spans_key: str = "sc") -> str:
    """displaCy markup of one doc: SVG for ``dep``, HTML for ``ent`` and ``span``."""
    options: dict[str, Any] = {"spans_key": spans_key} if style == "span" else {}
    markup = displacy.render(doc, style=style, jupyter=False, page=False, options=options)
    return str(markup)


def find_svg_renderer() -> SvgToPng | None:
    """A function from SVG markup to PNG bytes, or None when no renderer is installed."""
    try:
        import resvg_py
    except ImportError:
        pass
    else:

        def with_resvg(svg: str) -> bytes:
            png = resvg_py.svg_to_bytes(
                svg_string=svg, background="#ffffff", style_sheet=_FONT_FALLBACK
            )
            return bytes(png)

        return with_resvg
    try:
        import cairosvg
    except (ImportError, OSError):  # OSError: the package is there, the cairo library is not
        return None

    def with_cairo(svg: str) -> bytes:
        png = cairosvg.svg2png(bytestring=svg.encode("utf-8"), background_color="white")
        return bytes(png)

    return with_cairo


def fit_png(png: bytes, size: tuple[int, int] | None) -> Any:
    """The PNG as a PIL image on white, fitted (aspect kept, padded) into ``size`` if given."""
    from PIL import Image as PILImage
    from PIL import ImageOps

    with PILImage.open(io.BytesIO(png)) as opened:
        picture = opened.convert("RGBA")
    canvas = PILImage.new("RGBA", picture.size, (255, 255, 255, 255))
    picture = PILImage.alpha_composite(canvas, picture).convert("RGB")
    if size is not None:
        picture = ImageOps.pad(picture, size, color=(255, 255, 255))
    return picture
