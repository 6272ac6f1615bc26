"""CSV cells a spreadsheet shows as text and never runs as a formula (OWASP CSV injection)."""

# Spreadsheet programs run a cell starting with one of these as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell
