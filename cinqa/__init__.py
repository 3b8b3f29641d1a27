"""cinqa — data-quality workbook for the English Children in Need census."""

from cinqa.errors import CinqaError, ReadError, YearError
from cinqa.measures import measures
from cinqa.compare import Comparison, compare
from cinqa.read import read_return
from cinqa.returns import CensusReturn, Header
from cinqa.write import ReturnWriter, write_return
from cinqa.validate import Validation, validate
from cinqa import synth

__version__ = "0.1.0"

__all__ = [
    "CensusReturn",
    "CinqaError",
    "Comparison",
    "Header",
    "ReadError",
    "ReturnWriter",
    "Validation",
    "YearError",
    "compare",
    "measures",
    "read_return",
    "synth",
    "validate",
    "write_return",
]
