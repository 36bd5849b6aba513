"""Load generation: client processes that send queries and record raw per-query timings."""
