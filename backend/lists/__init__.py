"""Lists: the resource."""
