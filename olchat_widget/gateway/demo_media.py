"""Files for the demo chats, made in code: a small photo (PNG), a voice note (WAV) and a document (PDF).

Nothing binary is committed: each file is built from a few numbers, so the
demo shows media in the history exactly as a real chat would.
"""
from __future__ import annotations

import math
import struct
import zlib


def png(width: int = 96, height: int = 64) -> bytes:
    """A striped picture (sky, sun, grass) as an RGB PNG."""
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter: none
        for x in range(width):
            if (x - width * 0.75) ** 2 + (y - height * 0.3) ** 2 < (height * 0.15) ** 2:
                row += bytes((250, 204, 21))  # the sun
            elif y > height * 0.65:
                row += bytes((34, 139 + (x * 3) % 40, 34))  # grass
            else:
                row += bytes((120 + y, 180 + y // 2, 235))  # sky
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
            + chunk(b"IEND", b""))


def wav(seconds: float = 1.2, rate: int = 8000) -> bytes:
    """A short two-tone chime as 8-bit mono PCM WAV (every browser plays it)."""
    frames = int(seconds * rate)
    samples = bytes(
        int(128 + 60 * math.sin(2 * math.pi * (660 if n < frames // 2 else 880) * n / rate)
            * min(1.0, (frames - n) / (rate * 0.2)))
        for n in range(frames))
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)
    return (b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(samples)) + samples)


def pdf(text: str = "Price list") -> bytes:
    """A one-page PDF with one line of (ASCII) text."""
    stream = f"BT /F1 18 Tf 40 100 Td ({text}) Tj ET".encode("ascii")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


# What a demo message's "media" names: (MIME type, file name, maker).
DEMO_FILES = {
    "photo": ("image/png", "витрина.png", png),
    "voice": ("audio/wav", "голосовое.wav", wav),
    "document": ("application/pdf", "прайс.pdf", lambda: pdf("Price list 2026")),
}
