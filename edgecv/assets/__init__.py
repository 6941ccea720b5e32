"""Files shipped with edgecv: the default detector's weights."""
