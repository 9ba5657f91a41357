"""From run folders to figures, tables and the HTML report."""
