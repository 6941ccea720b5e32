"""Data sets edgecv can make by itself (the synthetic shapes set) and read."""
