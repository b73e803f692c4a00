"""`deribit-ts report`: what the research views say, as terminal tables, JSON, CSV or one offline HTML page.

``data`` asks the views (the numbers are computed in SQL), ``text`` prints tables, ``html`` draws the page.
"""

from deribit_ts.report.data import SECTIONS, Filters, Section, Table, collect

__all__ = ["SECTIONS", "Filters", "Section", "Table", "collect"]
