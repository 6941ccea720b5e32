"""Model definitions that belong to edgecv: the default detector and its trainer."""
