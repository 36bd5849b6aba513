"""Reports built from saved experiments: tables, plots and a PDF; no engine needed."""
