"""Token sheets: one A4 page per point, in Vietnamese, for the room that has only a browser: the
point, its province and code, the course's sessions in Viet Nam's time, and its personal link
as a QR code to scan and as text to type. A set is one PDF (a province's, for its coordinator
to hand out). Pure: the lines in, the PDF's bytes out.
"""

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import segno
from fpdf import FPDF

FONTS = Path(__file__).parent / "fonts"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
QR_MM = 90


@dataclass(frozen=True)
class Broadcast:
    title: str
    topic: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Sheet:
    code: str
    name: str
    province: str  # its name, or "" for a point of no province (a Teams site)
    link: str  # the point's page, its token in the fragment
    # When the sheet this one replaces was printed: its link no longer works.
    replaces: datetime | None = None


def when(moment: datetime) -> str:
    """'Thứ Ba 01/12/2026 08:00' in Viet Nam's time."""
    local = moment.astimezone(VIETNAM)
    return f"{WEEKDAYS[local.weekday()]} {local:%d/%m/%Y %H:%M}"


def schedule_line(broadcast: Broadcast) -> str:
    ends = broadcast.ends_at.astimezone(VIETNAM)
    title = " — ".join(part for part in (broadcast.title, broadcast.topic) if part)
    return f"{when(broadcast.starts_at)}–{ends:%H:%M}  {title}".rstrip()  # noqa: RUF001 (a range)


def sheets_pdf(course_title: str, schedule: list[Broadcast], sheets: list[Sheet]) -> bytes:
    """One page per sheet, in the order given."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"Phiếu kết nối điểm cầu — {course_title}")
    pdf.add_font("Noto", "", FONTS / "NotoSans-Regular.ttf")
    pdf.add_font("Noto", "B", FONTS / "NotoSans-Bold.ttf")
    pdf.set_auto_page_break(auto=True, margin=12)
    for sheet in sheets:
        _page(pdf, course_title, schedule, sheet)
    return bytes(pdf.output())


def _page(pdf: FPDF, course_title: str, schedule: list[Broadcast], sheet: Sheet) -> None:
    pdf.add_page()
    width = pdf.epw
    pdf.set_font("Noto", "B", 11)
    pdf.cell(width, 6, "PHIẾU KẾT NỐI ĐIỂM CẦU", new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font("Noto", "", 11)
    pdf.multi_cell(width, 6, course_title, new_x="LMARGIN", new_y="NEXT", align="C")
    if sheet.replaces is not None:
        pdf.ln(2)
        pdf.set_font("Noto", "B", 11)
        pdf.set_text_color(185, 28, 28)
        notice = (
            f"PHIẾU IN LẠI: thay phiếu in lúc {when(sheet.replaces)}."
            " Đường dẫn và mã QR trên phiếu cũ không còn dùng được."
        )
        pdf.multi_cell(width, 6, notice, new_x="LMARGIN", new_y="NEXT", align="C")
        pdf.set_text_color(0, 0, 0)
    pdf.ln(4)
    pdf.set_font("Noto", "B", 22)
    pdf.multi_cell(width, 10, sheet.name, new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font("Noto", "", 13)
    where = " · ".join(part for part in (sheet.province, f"Mã điểm cầu {sheet.code}") if part)
    pdf.cell(width, 8, where, new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.ln(4)
    image = io.BytesIO()
    segno.make(sheet.link, error="m").save(image, kind="png", scale=10, border=4)
    image.seek(0)
    pdf.image(image, x=(pdf.w - QR_MM) / 2, w=QR_MM, h=QR_MM)
    pdf.ln(2)
    pdf.set_font("Noto", "", 8)
    pdf.multi_cell(width, 4, sheet.link, new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.ln(4)
    pdf.set_font("Noto", "B", 12)
    pdf.cell(width, 7, "Cách kết nối", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Noto", "", 11)
    for step in (
        "1. Quét mã QR bằng điện thoại, hoặc gõ đường dẫn trên vào trình duyệt của máy tính.",
        "2. Nhập số học viên đang có mặt trong phòng, bấm «Cập nhật»; sửa lại khi số người thay"
        " đổi.",
        "3. Giữ trang mở trong suốt buổi học; trang báo rõ bàn trực có thấy điểm cầu hay không.",
        "4. Giữ phiếu này cẩn thận: ai có đường dẫn đều gửi tín hiệu được thay cho điểm cầu.",
    ):
        pdf.multi_cell(width, 6, step, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Noto", "B", 12)
    pdf.cell(width, 7, "Lịch phát (giờ Việt Nam)", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Noto", "", 10)
    for broadcast in schedule or []:
        pdf.multi_cell(width, 5.5, schedule_line(broadcast), new_x="LMARGIN", new_y="NEXT")
    if not schedule:
        pdf.multi_cell(width, 5.5, "Chưa có lịch phát.", new_x="LMARGIN", new_y="NEXT")
