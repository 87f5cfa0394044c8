"""The tray icon's picture: a colour and a glyph per state, drawn with PIL."""

from __future__ import annotations

from PIL import Image, ImageDraw

# Fill colour and glyph per state; the glyph keeps states apart for colour-blind users too.
_LOOK: dict[str, tuple[tuple[int, int, int], str]] = {
    "starting": ((120, 120, 120), "ring"),
    "swapping": ((30, 160, 70), "swap"),
    "off": ((110, 110, 110), "slash"),
    "no-face": ((230, 160, 20), "question"),
    "paused": ((60, 110, 200), "pause"),
    "error": ((210, 40, 40), "bang"),
}



def state_icon(state: str, size: int = 64) -> Image.Image:
    """A small round icon: colour and glyph per state. Drawn 4x larger and scaled down for smooth edges."""
    color, glyph = _LOOK.get(state, _LOOK["error"])
    big = size * 4
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    m = big // 16
    d.ellipse((m, m, big - m - 1, big - m - 1), fill=(*color, 255), outline=(255, 255, 255, 255), width=m)
    w = big // 10
    c, r = big / 2, big * 0.28
    white = (255, 255, 255, 255)
    if glyph == "swap":  # two arrows, one each way
        y1, y2, h = c - r * 0.45, c + r * 0.45, r * 0.42
        d.line((c - r, y1, c + r * 0.4, y1), fill=white, width=w)
        d.polygon([(c + r * 0.25, y1 - h), (c + r * 1.05, y1), (c + r * 0.25, y1 + h)], fill=white)
        d.line((c - r * 0.4, y2, c + r, y2), fill=white, width=w)
        d.polygon([(c - r * 0.25, y2 - h), (c - r * 1.05, y2), (c - r * 0.25, y2 + h)], fill=white)
    elif glyph == "slash":
        d.line((c - r, c + r, c + r, c - r), fill=white, width=w)
    elif glyph == "pause":
        d.rectangle((c - r * 0.7, c - r, c - r * 0.7 + w, c + r), fill=white)
        d.rectangle((c + r * 0.7 - w, c - r, c + r * 0.7, c + r), fill=white)
    elif glyph == "bang":
        d.rectangle((c - w / 2, c - r, c + w / 2, c + r * 0.35), fill=white)
        d.ellipse((c - w * 0.7, c + r * 0.6, c + w * 0.7, c + r * 0.6 + w * 1.4), fill=white)
    elif glyph == "question":
        d.arc((c - r * 0.7, c - r, c + r * 0.7, c + r * 0.2), 180, 90, fill=white, width=w)
        d.line((c, c + r * 0.2, c, c + r * 0.45), fill=white, width=w)
        d.ellipse((c - w * 0.7, c + r * 0.65, c + w * 0.7, c + r * 0.65 + w * 1.4), fill=white)
    else:  # ring
        d.ellipse((c - r, c - r, c + r, c + r), outline=white, width=w)
    return img.resize((size, size), Image.Resampling.LANCZOS)
