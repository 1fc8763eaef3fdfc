"""Math environments."""
