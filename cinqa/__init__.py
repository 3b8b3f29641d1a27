"""cinqa — data-quality workbook for the English Children in Need census."""

__version__ = "0.1.0"
