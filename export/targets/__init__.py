"""One module per export target."""
