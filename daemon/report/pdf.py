"""The report as an A4 PDF (fpdf2, pure Python): the same facts, timeline and event list as the HTML page.

Text is set in DejaVu Sans when the system has it (Debian: fonts-dejavu-core), so any candidate name
prints; without it, in the PDF core font Helvetica, where characters outside Latin-1 print as "?".
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from daemon.report import view
from daemon.report.thumbnails import Thumbnails

# fpdf2 subsets the font through fontTools, which logs every table it touches at INFO.
logging.getLogger("fontTools").setLevel(logging.WARNING)

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
PAGE_WIDTH_MM = 210
MARGIN_MM = 12
INK = (31, 41, 51)
MUTED = (97, 110, 124)
LINE = (217, 222, 227)
WARNING = (160, 64, 0)


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


class _ReportPdf:
    def __init__(self):
        from fpdf import FPDF  # imported here: it takes half a second, and only the PDF needs it

        self.pdf = FPDF(orientation="P", unit="mm", format="A4")
        self.pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        self.pdf.set_auto_page_break(True, MARGIN_MM)
        self.family = self._font()
        self.pdf.add_page()

    def _font(self) -> str:
        for folder in FONT_DIRS:
            regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
            if regular.is_file() and bold.is_file():
                self.pdf.add_font("DejaVu", "", regular)
                self.pdf.add_font("DejaVu", "B", bold)
                self.unicode = True
                return "DejaVu"
        self.unicode = False
        return "Helvetica"

    def text(self, value: str) -> str:
        return value if self.unicode else value.encode("latin-1", "replace").decode("latin-1")

    def font(self, size: float, bold: bool = False, colour: tuple[int, int, int] = INK) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)
        self.pdf.set_text_color(*colour)

    def line(self, value: str, size: float = 9, bold: bool = False, colour=INK, height: float = 4.6) -> None:
        self.font(size, bold, colour)
        self.pdf.multi_cell(0, height, self.text(value), new_x="LMARGIN", new_y="NEXT")

    def heading(self, value: str) -> None:
        self.pdf.ln(3)
        self.line(value.upper(), size=10, bold=True, colour=MUTED, height=6)

    def table(self, rows: list[list[str]], widths: tuple[float, ...], size: float = 8) -> None:
        from fpdf.fonts import FontFace

        self.font(size)
        self.pdf.set_fill_color(255, 255, 255)  # cells take the current fill colour: the timeline's last bar
        self.pdf.set_draw_color(*LINE)
        with self.pdf.table(
            col_widths=widths, line_height=4.2, first_row_as_headings=True, text_align="LEFT",
            borders_layout="HORIZONTAL_LINES", padding=0.8,
            headings_style=FontFace(emphasis="BOLD", color=INK, fill_color=(236, 240, 243)),
        ) as table:
            for row in rows:
                cells = table.row()
                for value in row:
                    cells.cell(self.text(value))


def render_report_pdf(report: dict, thumbnails: Thumbnails | None = None) -> bytes:
    """The report; with `thumbnails`, the events' snapshots follow the event list, numbered as it is."""
    doc = _ReportPdf()
    pdf = doc.pdf
    s, score = report["session"], report["integrity"]

    doc.line("Proctoring session report", size=16, bold=True, height=8)
    doc.line(f"Session {s['id']} · kiosk {s['kiosk']} · {s['state']}", colour=MUTED)
    if score["score"] is None:
        doc.line("Not assessable: no integrity score", size=13, bold=True, height=7, colour=WARNING)
        doc.line(f"{report['assessment']['reason']}. The events below are still the ones seen.", colour=WARNING)
    else:
        doc.line(f"Integrity score {score['score']:.1f} / 100 (automatic)", size=13, bold=True, height=7)
        review = report["review"]
        reviewed = review["reviewed_integrity"]
        if reviewed is None:
            doc.line("Reviewed score: not reviewed yet", size=11, bold=True, height=6)
        else:
            provisional = "" if review["state"] == "reviewed" else " (provisional)"
            doc.line(f"Reviewed score {reviewed['score']:.1f} / 100{provisional}", size=11, bold=True, height=6)
    if s["not_checked"]:
        doc.line("Not checked on this kiosk (no object detection model): "
                 + ", ".join(view.label(t) for t in s["not_checked"]) + ".", colour=WARNING)
    candidate = s["candidate_name"] or "-"
    if s["candidate_id"]:
        candidate += f" ({s['candidate_id']})"
    doc.line(f"Candidate: {candidate}    Exam: {s['exam_id'] or '-'}    Notes: {s['notes'] or '-'}")
    doc.line(
        f"Started {view.local_time(s['started_at'])}, ended {view.local_time(s['ended_at'])}, "
        f"{view.clock_offset(s['duration_seconds'])} ({s['duration_seconds']:.1f} s, {s['frames']} frames; "
        f"analysed {view.percent(report['assessment']['analysed_share'])}). Flagged {score['flagged_seconds']:.1f} s ({view.percent(score['share_flagged'])})."
    )

    _review(doc, report["review"])

    doc.heading("Timeline")
    _timeline(doc, view.timeline(report))

    doc.heading("Integrity score")
    rows = [["Event type", "Events", "Flagged", "Share", "Severity x weight", "Points"]]
    rows += [
        [view.label(d["type"]), str(d["events"]), f"{d['flagged_seconds']:.1f} s",
         f"{100 * d['share_of_session']:.2f} %", f"{d['severity']} {d['severity_factor']} x {d['weight']}",
         f"-{d['points']:.2f}"]
        for d in score["deductions"]
    ]
    doc.table(rows, (40, 16, 22, 20, 40, 20))
    total = "none (not assessable)" if score["score"] is None else f"{score['score']:.1f}"
    doc.line(f"{score['formula']} = {total}", size=8, colour=MUTED)

    doc.heading("Focus")
    focus = report["focus"]
    doc.line("   ".join(f"{name}: {view.percent(focus[key])}" for key, name in view.FOCUS_LABELS.items())
             + f"   (of {focus['frames']} analysed frames)")
    if sound := view.sound_text(focus):
        doc.line(sound)
    c = report["calibration"]
    if c["calibrated"]:
        n = c["neutral_deg"]
        gaze = "" if n["gaze_yaw"] is None else f"; gaze yaw {n['gaze_yaw']}°, pitch {n['gaze_pitch']}°"
        doc.line(f"Calibration: neutral over {c['samples']} frames, ended at {view.clock_offset(c['ended_offset_seconds'])}: "
                 f"head yaw {n['head_yaw']}°, pitch {n['head_pitch']}°{gaze}.")
    else:
        doc.line("Calibration: not calibrated, so looking away was not assessed.")

    doc.heading("Events")
    if report["events"]:
        rows = [["#", "Start", "Event", "Severity", "Duration", "Conf.", "Evidence", "Verdict"]]
        rows += [
            [str(i), view.clock_offset(e["start_offset_seconds"]), view.label(e["type"]), e["severity"],
             "open" if e["duration_seconds"] is None else f"{e['duration_seconds']:.1f} s",
             f"{e['peak_confidence']:.2f}", e["description"], _verdict_text(e["review"])]
            for i, e in enumerate(report["events"], start=1)
        ]
        doc.table(rows, (7, 13, 24, 14, 13, 10, 75, 30), size=7)
    else:
        doc.line("No event in this session.")
    if thumbnails:
        _snapshots(doc, report["events"], thumbnails)
    return bytes(pdf.output())


def _review(doc: _ReportPdf, review: dict) -> None:
    doc.heading("Review by the exam board")
    flags = review["flags"]
    marked = ""
    if review["marked_by"]:
        action = "marked reviewed" if review["state"] == "reviewed" else "reopened"
        marked = f", {action} by {review['marked_by']}, {view.local_time(review['marked_at'])}"
    doc.line(f"{view.review_state(review['state']).capitalize()}{marked}. {flags['confirmed']} flags confirmed, "
             f"{flags['dismissed']} dismissed, {flags['pending']} without a verdict.")
    if review["reviewed_integrity"] is not None:
        doc.line(f"Reviewed score: {review['reviewed_basis']}.", size=8, colour=MUTED)
    remarks = review["remarks"]
    if remarks:
        doc.line("Final remarks", bold=True)
        doc.line(remarks["text"])
        doc.line(f"{remarks['reviewer']}, {view.local_time(remarks['at'])}", size=8, colour=MUTED)
    for note in review["notes"]:
        doc.line(f"Note: {note['text']} ({note['reviewer']}, {view.local_time(note['at'])})", size=8)


def _verdict_text(verdict: dict | None) -> str:
    if verdict is None:
        return "no verdict"
    note = f": {verdict['note']}" if verdict["note"] else ""
    return f"{verdict['verdict']}{note} ({verdict['reviewer']})"


SNAPSHOTS_PER_ROW = 3
SNAPSHOT_GAP_MM = 4


def _snapshots(doc: _ReportPdf, events: list[dict], thumbnails: Thumbnails) -> None:
    """A grid of the events' snapshots, each captioned with its number in the event list, time and type."""
    from PIL import Image  # fpdf2's own dependency: gives each picture's height before it is placed

    doc.heading("Snapshots")
    pdf = doc.pdf
    width = (PAGE_WIDTH_MM - 2 * MARGIN_MM - (SNAPSHOTS_PER_ROW - 1) * SNAPSHOT_GAP_MM) / SNAPSHOTS_PER_ROW
    shown = [(i, e) for i, e in enumerate(events, start=1) if e["id"] in thumbnails]
    for row in range(0, len(shown), SNAPSHOTS_PER_ROW):
        cells = []
        for number, event in shown[row:row + SNAPSHOTS_PER_ROW]:
            picture = Image.open(io.BytesIO(thumbnails[event["id"]]))
            cells.append((number, event, picture, width * picture.height / picture.width))
        tallest = max(height for *_, height in cells) + 5
        if pdf.will_page_break(tallest):
            pdf.add_page()
        y = pdf.get_y()
        for column, (number, event, picture, height) in enumerate(cells):
            x = MARGIN_MM + column * (width + SNAPSHOT_GAP_MM)
            pdf.image(picture, x=x, y=y, w=width, h=height)
            doc.font(7, colour=MUTED)
            caption = f"#{number}  {view.clock_offset(event['start_offset_seconds'])}  {view.label(event['type'])}"
            pdf.text(x, y + height + 3.5, doc.text(caption))
        pdf.set_y(y + tallest + 2)


def _timeline(doc: _ReportPdf, t: view.Timeline) -> None:
    pdf = doc.pdf
    scale = (PAGE_WIDTH_MM - 2 * MARGIN_MM) / t.width
    height = t.height * scale
    if pdf.will_page_break(height + 2):
        pdf.add_page()
    x0, y0 = MARGIN_MM, pdf.get_y()
    pdf.set_draw_color(*LINE)
    pdf.rect(x0, y0, t.width * scale, height)
    if t.calibration:
        pdf.set_fill_color(234, 242, 251)
        pdf.rect(x0 + t.calibration[0] * scale, y0, t.calibration[1] * scale, height, style="F")
    doc.font(6, colour=MUTED)
    for x, label in t.ticks:
        pdf.line(x0 + x * scale, y0 + 4, x0 + x * scale, y0 + height)
        pdf.text(x0 + x * scale - pdf.get_string_width(label) / 2, y0 + 3, label)
    doc.font(7)
    for name, y in t.lanes:
        pdf.text(x0 + (t.plot_left - 4) * scale - pdf.get_string_width(name), y0 + y * scale + 1.2, doc.text(name))
    if not t.lanes:
        pdf.text(x0 + t.plot_left * scale, y0 + 10, "No event in this session.")
    for bar in t.bars:
        colour = _hex_rgb(bar.colour)
        if bar.verdict == "dismissed":  # faded, as on the page
            colour = tuple(round(255 - 0.3 * (255 - c)) for c in colour)
        pdf.set_fill_color(*colour)
        pdf.rect(x0 + bar.x * scale, y0 + bar.y * scale, bar.width * scale, view.BAR_HEIGHT * scale, style="F")
    if t.similarity:
        _similarity(doc, t, x0, y0, scale)
    pdf.set_y(y0 + height + 2)


def _similarity(doc: _ReportPdf, t: view.Timeline, x0: float, y0: float, scale: float) -> None:
    pdf, plot = doc.pdf, t.similarity
    label = doc.text(plot.label)
    pdf.text(x0 + (t.plot_left - 4) * scale - pdf.get_string_width(label), y0 + (plot.top + plot.height / 2) * scale, label)
    pdf.set_draw_color(*_hex_rgb("#c0392b"))
    pdf.set_dash_pattern(dash=1, gap=0.8)
    pdf.line(x0 + t.plot_left * scale, y0 + plot.threshold_y * scale, x0 + (t.plot_left + t.plot_width) * scale,
             y0 + plot.threshold_y * scale)
    pdf.set_dash_pattern()
    pdf.set_draw_color(*_hex_rgb("#2c3e50"))
    pdf.polyline([(x0 + x * scale, y0 + y * scale) for x, y in plot.points])
    pdf.set_draw_color(*LINE)
